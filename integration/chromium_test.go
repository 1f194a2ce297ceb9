package integration

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumContext starts Debian's headless Chromium (the flags the
// project's CI allows: no sandbox, no GPU, no background traffic or
// component updates) for the test and returns a chromedp context bounded
// by timeout; the browser is closed when the test ends.
func chromiumContext(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	chromium := requireTool(t, "chromium", "apt-get install chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}
