package viztable

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// column is a column of a columnTable.
type column struct {
	header string
	left   bool
}

// arrow is the line drawing that joins a route's row to its backends' rows.
const arrow = "─"

// writeColumns prints rows under headers two spaces apart, each column as wide as its
// widest cell, left- or right-aligned, the layout of Linkerd's stat-inbound and
// stat-outbound. A cell ending in "─" followed by one starting with "─" is drawn as one
// line across the column gap and the cells' padding.
func writeColumns(w io.Writer, cols []column, rows [][]string) error {
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = utf8.RuneCountInString(c.header)
		for _, r := range rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	header := make([]string, len(cols))
	for i, c := range cols {
		header[i] = c.header
	}
	for _, r := range append([][]string{header}, rows...) {
		var b strings.Builder
		for i, c := range cols {
			v := r[i]
			pad := widths[i] - utf8.RuneCountInString(v)
			gap := "  "
			if strings.HasSuffix(v, arrow) && i+1 < len(cols) && strings.HasPrefix(r[i+1], arrow) {
				gap = arrow + arrow
			}
			switch {
			case strings.HasPrefix(v, arrow):
				b.WriteString(strings.Repeat(arrow, pad) + v)
			case strings.HasSuffix(v, arrow):
				b.WriteString(v + strings.Repeat(arrow, pad))
			case c.left:
				b.WriteString(v + strings.Repeat(" ", pad))
			default:
				b.WriteString(strings.Repeat(" ", pad) + v)
			}
			if i+1 < len(cols) {
				b.WriteString(gap)
			}
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return err
		}
	}
	return nil
}
