package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIndexAtRootNamesTheCurrentBuild(t *testing.T) {
	h := Handler()
	r := get(t, h, http.MethodGet, "/", nil)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET /: status %d", r.StatusCode)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET /: Content-Type %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("GET /: Cache-Control %q, want no-cache (index must be revalidated)", cc)
	}
	if r.Header.Get("ETag") == "" {
		t.Error("GET /: no ETag")
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET /: CSP %q does not restrict to self", csp)
	}
	b := body(t, r)
	if strings.Contains(b, assetPrefix) {
		t.Error("index.html still contains the asset placeholder")
	}
	build := Build()
	if len(build) != 12 {
		t.Fatalf("Build() = %q", build)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`).FindAllStringSubmatch(b, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html references %d assets, want the script, the stylesheet and the icon", len(refs))
	}
	for _, m := range refs {
		ref := strings.SplitN(m[1], "#", 2)[0]
		if !strings.HasPrefix(ref, "/assets/"+build+"/") {
			t.Errorf("asset reference %s does not carry the build %s", ref, build)
		}
		if r := get(t, h, http.MethodGet, ref, nil); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s (referenced by index.html): status %d", ref, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodGet, "/index.html", nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET /index.html: status %d", r.StatusCode)
	}
}

func TestAssetContentTypesAndCaching(t *testing.T) {
	h := Handler()
	p := "/assets/" + Build() + "/"
	for name, want := range map[string]string{
		"app.js":      "text/javascript; charset=utf-8",
		"matrix.js":   "text/javascript; charset=utf-8",
		"style.css":   "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	} {
		r := get(t, h, http.MethodGet, p+name, nil)
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d", name, r.StatusCode)
			continue
		}
		if ct := r.Header.Get("Content-Type"); ct != want {
			t.Errorf("GET %s: Content-Type %q, want %q", name, ct, want)
		}
		if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET %s: Cache-Control %q, want immutable (the URL carries the build hash)", name, cc)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", name)
		}
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", name)
			continue
		}
		if r := get(t, h, http.MethodGet, p+name, map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: status %d, want 304", name, r.StatusCode)
		}
	}
	if r := get(t, h, http.MethodHead, p+"app.js", nil); r.StatusCode != http.StatusOK || body(t, r) != "" {
		t.Errorf("HEAD app.js: status %d or a body", r.StatusCode)
	}
}

func TestUnknownPathsDirectoriesAndMethods(t *testing.T) {
	h := Handler()
	build := Build()
	for _, p := range []string{
		"/nope", "/app.js", "/assets/", "/assets/" + build, "/assets/" + build + "/",
		"/assets/" + build + "/missing.js", "/assets/000000000000/app.js", // an old build
		"/assets/" + build + "/index.html", "/assets/" + build + "/../web.go", "/api/v1/query",
	} {
		r := get(t, h, http.MethodGet, p, nil)
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, r.StatusCode)
		}
		if b := body(t, r); strings.Contains(b, "<a href") || strings.Contains(b, "app.js") {
			t.Errorf("GET %s: body looks like a directory listing: %q", p, b)
		}
	}
	r := get(t, h, http.MethodPost, "/", nil)
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: status %d Allow %q, want 405 with Allow", r.StatusCode, r.Header.Get("Allow"))
	}
}

func TestBuildChangesWithAnyAsset(t *testing.T) {
	mk := func(js string) *site {
		s, err := newSite(fstest.MapFS{
			"assets/index.html": {Data: []byte(`<script src="{{ASSETS}}/a.js"></script>`)},
			"assets/a.js":       {Data: []byte(js)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk("1"), mk("2")
	if a.build == b.build {
		t.Fatal("build hash did not change when an asset changed")
	}
	if a.index.etag == b.index.etag {
		t.Error("index ETag did not change with the build")
	}
	if _, err := newSite(fstest.MapFS{"assets/index.html": {}, "assets/x.exe": {}}); err == nil || !strings.Contains(err.Error(), "x.exe") {
		t.Errorf("an asset without a known content type: err %v, want one naming it", err)
	}
	if _, err := newSite(fstest.MapFS{"assets/a.js": {}}); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Errorf("no index.html: err %v", err)
	}
}
