package goldenmetrics

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"text/tabwriter"
)

// WriteTable writes rows as `linkerd viz stat deploy` does: NAME MESHED SUCCESS RPS
// LATENCY_P50 LATENCY_P95 LATENCY_P99 TLS, with "-" for figures that need traffic the
// interval did not have.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tMESHED\tSUCCESS\tRPS\tLATENCY_P50\tLATENCY_P95\tLATENCY_P99\tTLS")
	for _, r := range rows {
		if r.Responses == 0 {
			fmt.Fprintf(tw, "%s\t%d/%d\t-\t-\t-\t-\t-\t-\n", r.Name, r.Meshed, r.Pods)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Meshed, r.Pods,
			percent(r.SuccessRate), rps(r.RPS), ms(r.P50), ms(r.P95), ms(r.P99), percent(r.TLSShare))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing the stat table: %w", err)
	}
	return nil
}

func percent(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
}

func rps(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "rps"
}

// ms formats a latency like viz does: whole milliseconds.
func ms(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + "ms"
}
