// Package web is the demo's HTTP/1.1 front end: an HTML page and JSON endpoints, each
// answered by calling the Catalog and Ratings gRPC services.
//
// Routes:
//
//	GET  /                       HTML page of every item with its rating (a failed rating is shown as unavailable)
//	GET  /api/items              JSON list of items (Catalog.ListItems)
//	GET  /api/items/{id}         JSON item with its rating (Catalog.GetItem, Ratings.GetRating)
//	POST /api/items/{id}/rating  JSON body {"stars": 1..5}, answers the new rating (Ratings.Rate)
//	GET  /ready                  200 once serving (no backend calls)
//
// Failed backend calls become HTTP errors: NOT_FOUND is 404, INVALID_ARGUMENT 400,
// UNAVAILABLE 503, DEADLINE_EXCEEDED 504, anything else 500, with a JSON body
// {"error": "..."}.
package web

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	demov1 "github.com/l5d-go/l5d/test/demo/gen/demov1"
)

// callTimeout bounds each backend call.
const callTimeout = 5 * time.Second

// Item is an item as the JSON endpoints show it.
type Item struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description"`
	PriceCents  int64   `json:"price_cents"`
	Rating      *Rating `json:"rating,omitempty"`
}

// Rating is an item's rating as the JSON endpoints show it.
type Rating struct {
	Votes   int64   `json:"votes"`
	Average float64 `json:"average"`
}

// Vote is the body of POST /api/items/{id}/rating.
type Vote struct {
	Stars int32 `json:"stars"`
}

// Handler serves the front end. Use New.
type Handler struct {
	catalog demov1.CatalogClient
	ratings demov1.RatingsClient
	log     *slog.Logger
	mux     *http.ServeMux
}

// New returns the front end calling catalog and ratings; log may be nil.
func New(catalog demov1.CatalogClient, ratings demov1.RatingsClient, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{catalog: catalog, ratings: ratings, log: log, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /{$}", h.page)
	h.mux.HandleFunc("GET /api/items", h.listItems)
	h.mux.HandleFunc("GET /api/items/{id}", h.getItem)
	h.mux.HandleFunc("POST /api/items/{id}/rating", h.rate)
	h.mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready\n") })
	return h
}

// ServeHTTP routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) listItems(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	resp, err := h.catalog.ListItems(ctx, &demov1.ListItemsRequest{})
	if err != nil {
		h.fail(w, "listing items", err)
		return
	}
	out := make([]Item, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		out = append(out, toItem(it, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getItem(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	id := r.PathValue("id")
	it, err := h.catalog.GetItem(ctx, &demov1.GetItemRequest{Id: id})
	if err != nil {
		h.fail(w, "getting item "+id, err)
		return
	}
	rt, err := h.ratings.GetRating(ctx, &demov1.GetRatingRequest{ItemId: id})
	if err != nil {
		h.fail(w, "getting the rating of "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, toItem(it, rt))
}

func (h *Handler) rate(w http.ResponseWriter, r *http.Request) {
	var v Vote
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body is not a JSON vote like {\"stars\": 4}: " + err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	rt, err := h.ratings.Rate(ctx, &demov1.RateRequest{ItemId: r.PathValue("id"), Stars: v.Stars})
	if err != nil {
		h.fail(w, "rating "+r.PathValue("id"), err)
		return
	}
	writeJSON(w, http.StatusOK, Rating{Votes: rt.GetVotes(), Average: rt.GetAverage()})
}

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>l5d demo shop</title></head>
<body><h1>l5d demo shop</h1>
<table>
<tr><th>Item</th><th>Description</th><th>Price</th><th>Rating</th></tr>
{{range .}}<tr><td>{{.Name}}</td><td>{{.Description}}</td><td>{{.Price}}</td><td>{{.Rating}}</td></tr>
{{end}}</table>
</body></html>
`))

type pageRow struct{ Name, Description, Price, Rating string }

// page renders every item; an item whose rating cannot be fetched shows "unavailable".
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	resp, err := h.catalog.ListItems(ctx, &demov1.ListItemsRequest{})
	if err != nil {
		h.fail(w, "listing items", err)
		return
	}
	rows := make([]pageRow, 0, len(resp.GetItems()))
	for _, it := range resp.GetItems() {
		row := pageRow{Name: it.GetName(), Description: it.GetDescription(),
			Price: fmt.Sprintf("%d.%02d", it.GetPriceCents()/100, it.GetPriceCents()%100), Rating: "unavailable"}
		if rt, err := h.ratings.GetRating(ctx, &demov1.GetRatingRequest{ItemId: it.GetId()}); err == nil {
			row.Rating = fmt.Sprintf("%.1f (%d votes)", rt.GetAverage(), rt.GetVotes())
		}
		rows = append(rows, row)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, rows); err != nil {
		h.log.Warn("writing the page", "err", err)
	}
}

func toItem(it *demov1.Item, rt *demov1.Rating) Item {
	out := Item{ID: it.GetId(), Name: it.GetName(), Description: it.GetDescription(), PriceCents: it.GetPriceCents()}
	if rt != nil {
		out.Rating = &Rating{Votes: rt.GetVotes(), Average: rt.GetAverage()}
	}
	return out
}

// HTTPStatus maps a gRPC error to the HTTP status the front end answers with.
func HTTPStatus(err error) int {
	switch status.Code(err) {
	case codes.NotFound:
		return http.StatusNotFound
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

func (h *Handler) fail(w http.ResponseWriter, what string, err error) {
	code := HTTPStatus(err)
	if code >= 500 {
		h.log.Info("backend call failed", "call", what, "err", err)
	}
	writeJSON(w, code, map[string]string{"error": what + ": " + status.Convert(err).Message()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
