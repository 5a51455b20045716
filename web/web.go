// Package web is Bantay's NOC page: the live latency heatmap, the map of
// the Philippines and the SmokePing-style drill-down, as plain ES modules
// and canvas, embedded in the collector binary so a NOC without internet
// access gets the whole page from the collector (docs/web.md).
//
// Handler serves index.html at "/" and every other asset under
// "/assets/<build>/", where <build> is a hash of all assets: the page names
// its assets through that prefix (and ES module imports resolve relative to
// it), so assets are cached for a year and an upgraded collector is picked up
// at the next page load, because index.html itself is always revalidated
// (ETag, Cache-Control: no-cache).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assetFS embed.FS

// assetPrefix is the placeholder in index.html for "/assets/<build>".
const assetPrefix = "{{ASSETS}}"

// contentTypes lists the content type of every asset extension the page
// ships; a file with another extension is not served (so nothing is ever
// content-sniffed).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
	".png":  "image/png",
}

// csp allows only the page's own origin: no CDN, no inline script, and
// websockets only back to the collector that served the page.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	ctype string
	etag  string
}

type site struct {
	build  string            // hash of all assets
	index  asset             // index.html with the asset prefix filled in
	assets map[string]*asset // by path below assets/, e.g. "app.js"
}

var loadSite = sync.OnceValues(func() (*site, error) { return newSite(assetFS) })

func newSite(fsys fs.FS) (*site, error) {
	s := &site{assets: map[string]*asset{}}
	all := sha256.New()
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("asset %s: no content type for extension %q", p, path.Ext(p))
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		fmt.Fprintf(all, "%s\x00%d\x00", name, len(body))
		all.Write(body)
		s.assets[name] = &asset{body: body, ctype: ct, etag: etagOf(body)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	s.build = hex.EncodeToString(all.Sum(nil))[:12]
	idx, ok := s.assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("web assets: index.html is missing")
	}
	body := bytes.ReplaceAll(idx.body, []byte(assetPrefix), []byte("/assets/"+s.build))
	s.index = asset{body: body, ctype: idx.ctype, etag: etagOf(body)}
	return s, nil
}

func etagOf(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:8]) + `"`
}

// Handler serves the NOC page: index.html at "/" (and "/index.html"), the
// assets under "/assets/<build>/", 404 for every other path (including
// directories: there are no listings) and 405 for methods other than GET
// and HEAD. Mount it at "/" next to the heatmap's /ws and /api paths.
func Handler() http.Handler {
	s, err := loadSite()
	if err != nil {
		// The assets are compiled in, so this is a build defect: every
		// request reports it rather than the process dying at start-up.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "web UI unavailable: "+err.Error(), http.StatusInternalServerError)
		})
	}
	return s
}

// Build returns the hash that names the current asset set ("/assets/<build>/").
func Build() string {
	s, err := loadSite()
	if err != nil {
		return ""
	}
	return s.build
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method "+r.Method+" not allowed; use GET", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	p := r.URL.Path
	switch {
	case p == "/" || p == "/index.html":
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		// Always revalidated: it names the current asset build.
		h.Set("Cache-Control", "no-cache")
		serve(w, r, &s.index)
		return
	case strings.HasPrefix(p, "/assets/"):
		rest := strings.TrimPrefix(p, "/assets/")
		build, name, ok := strings.Cut(rest, "/")
		if a := s.assets[name]; ok && build == s.build && a != nil && name != "index.html" {
			// The build hash in the URL changes with any asset, so the
			// content behind this URL never does.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
			serve(w, r, a)
			return
		}
	}
	http.NotFound(w, r)
}

func serve(w http.ResponseWriter, r *http.Request, a *asset) {
	w.Header().Set("Content-Type", a.ctype)
	w.Header().Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304, HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
