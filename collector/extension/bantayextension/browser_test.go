package bantayextension

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/bantay-noc/bantay/collector/extension/bantayextension/internal/metadata"
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

// TestBrowserGoesToLoginWhenTheSessionEnds: a logged-in page whose session
// stops being valid (here the collector restarts without a session key,
// which ends every session as an expiry does) cannot reopen /ws, and the
// browser cannot say why; the page finds out and goes to the login form,
// which brings it back, live, where it was.
func TestBrowserGoesToLoginWhenTheSessionEnds(t *testing.T) {
	pg := pagetest.Open(t, 90*time.Second)
	sec := newSecrets(t)
	cfg := testConfig(t, sec.cfg)
	base := "http://" + cfg.NetAddr.Endpoint
	first, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, first.Start(context.Background(), componenttest.NewNopHost()))
	logIn := []chromedp.Action[chromedp.Void]{
		chromedp.WaitVisible(`input[name=password]`),
		chromedp.SendKeys(`input[name=user]`, "noc"),
		chromedp.SendKeys(`input[name=password]`, sec.readerPassword),
		chromedp.Submit(`input[name=password]`),
		chromedp.WaitVisible(`#app[data-conn=live]`),
	}
	pg.Must("open the page, log in, go live", chromedp.Do(pg.Ctx, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(base + "/?wall=1")}, logIn...)...))

	require.NoError(t, first.Shutdown(context.Background()))
	second, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	require.NoError(t, err)
	require.NoError(t, second.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, second.Shutdown(context.Background())) })

	pg.Must("be sent to the login form", chromedp.Do(pg.Ctx, chromedp.WaitVisible(`input[name=password]`)))
	loc, err := chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	pg.Must("read the location", err)
	if loc != "/login?next="+url.QueryEscape("/?wall=1") {
		t.Errorf("the page went to %q, want the login form with next=/?wall=1", loc)
	}
	pg.Must("log in again, back live", chromedp.Do(pg.Ctx, logIn...))
	loc, err = chromedp.Run(pg.Ctx, chromedp.Evaluate[string](`location.pathname + location.search`))
	pg.Must("read the location", err)
	if loc != "/?wall=1" {
		t.Errorf("after logging in again the browser is at %q, want /?wall=1", loc)
	}
}
