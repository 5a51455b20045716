package store

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
)

// metadataIndex remembers the type, unit and help of every metric family the
// translator has appended. Prometheus answers /api/v1/metadata only from its
// scrape targets, so for OTLP-ingested metrics it returns nothing; Grafana's
// query editor uses this endpoint for hints, so Bantay answers it from what
// OTLP told us. (A documented, deliberate difference: docs/decisions.md.)
type metadataIndex struct {
	mu       sync.RWMutex
	families map[string]metadata.Metadata
}

// observe records m for family; cheap when nothing changed, which is always
// after the first request.
func (x *metadataIndex) observe(family string, m metadata.Metadata) {
	if family == "" || m.Type == "" {
		return
	}
	x.mu.RLock()
	old, ok := x.families[family]
	x.mu.RUnlock()
	if ok && old == m {
		return
	}
	x.mu.Lock()
	if x.families == nil {
		x.families = make(map[string]metadata.Metadata)
	}
	x.families[family] = m
	x.mu.Unlock()
}

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// ServeHTTP answers /api/v1/metadata in Prometheus's format, honouring the
// metric and limit parameters as Prometheus does.
func (x *metadataIndex) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", "limit must be a number")
			return
		}
		limit = n
	}
	metric := r.FormValue("metric")
	x.mu.RLock()
	names := make([]string, 0, len(x.families))
	for name := range x.families {
		if metric == "" || name == metric {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if limit >= 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make(map[string][]metadataEntry, len(names))
	for _, name := range names {
		m := x.families[name]
		out[name] = []metadataEntry{{Type: string(m.Type), Help: m.Help, Unit: m.Unit}}
	}
	x.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": out})
}

func writeAPIError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}
