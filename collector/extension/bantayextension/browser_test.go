package bantayextension

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bantay-noc/bantay/internal/harness/pagetest"
)

// TestBrowserLogsInAndGoesLive drives Debian's Chromium through the login
// form of a collector with an access policy: the page redirects to the
// form, the form's session cookie (HttpOnly, so the page's scripts cannot
// read it) opens the page, and the page's websocket goes live with it.
func TestBrowserLogsInAndGoesLive(t *testing.T) {
	pg := pagetest.Open(t, 60*time.Second)
	sec := newSecrets(t)
	cfg := testConfig(t, sec.cfg)
	startWithLogs(t, cfg)
	base := "http://" + cfg.NetAddr.Endpoint

	pg.Must("open the page, log in, go live", chromedp.Do(pg.Ctx,
		chromedp.Navigate(base+"/?wall=1"),
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=user]`, "noc"),
		chromedp.SendKeys(`input[name=password]`, sec.readerPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#app[data-conn=live]`),
	))
	loc, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	pg.Must("read the location", err)
	if loc != "/?wall=1" {
		t.Errorf("after login the browser is at %q, want back at /?wall=1", loc)
	}
	cookies, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`document.cookie`))
	pg.Must("read document.cookie", err)
	if cookies != "" {
		t.Errorf("the page's scripts can read cookies %q; the session must be HttpOnly", cookies)
	}
}
