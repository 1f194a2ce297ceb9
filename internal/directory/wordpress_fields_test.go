package directory

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestWordPressHonoursConfiguredFieldNames: a site whose plugin names the
// id, name and status fields differently is read and written through
// those names; integer statuses stay integers, and a device without a
// status field gets one.
func TestWordPressHonoursConfiguredFieldNames(t *testing.T) {
	list := `a:4:{i:0;s:4:"junk";i:1;a:3:{s:3:"uid";s:5:"phone";s:5:"label";i:7;s:5:"state";i:0;}` +
		`i:2;a:2:{s:3:"uid";s:3:"tab";s:5:"label";a:0:{}}s:5:"watch";a:2:{s:3:"uid";s:5:"other";s:5:"label";s:1:"W";}}`
	w, db := wordpress(t, "wp_", map[string]string{userA: list})
	// An empty prefix is WordPress's default, wp_.
	w.TablePrefix = ""
	w.IDField, w.NameField, w.StatusField = "uid", "label", "state"
	ctx := context.Background()
	for device, name := range map[string]string{"phone": "7", "tab": "", "other": "W"} {
		d, err := w.Lookup(ctx, userA, device)
		if err != nil || d.Name != name || d.DeviceID != device || d.UserID != userA {
			t.Errorf("lookup %s: %+v, %v; want name %q", device, d, err, name)
		}
	}
	// "watch" is the array key of a device whose id field says "other".
	if _, err := w.Lookup(ctx, userA, "watch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup by the key of a device that has an id: %v, want ErrNotFound", err)
	}
	for _, step := range []struct {
		device string
		on     bool
		want   string
	}{
		{"phone", true, `s:5:"state";i:1;`},
		{"phone", false, `s:5:"state";i:0;`},
		{"tab", false, `s:5:"label";a:0:{}s:5:"state";s:3:"off";}`},
		{"tab", true, `s:5:"label";a:0:{}s:5:"state";s:2:"on";}`},
	} {
		if err := w.SetStatus(ctx, userA, step.device, step.on); err != nil {
			t.Fatal(err)
		}
		if got := deviceList(t, db, "wp_", userA); !strings.Contains(got, step.want) {
			t.Errorf("%s on=%v: %s, want it to contain %s", step.device, step.on, got, step.want)
		}
	}
}

// TestWordPressValidateNamesWhatIsMissing: both meta keys are required and
// the table prefix is at most 32 safe characters.
func TestWordPressValidateNamesWhatIsMissing(t *testing.T) {
	for name, w := range map[string]WordPress{
		"no uuid key":    {DevicesKey: "d"},
		"no devices key": {UUIDKey: "u"},
		"long prefix":    {TablePrefix: strings.Repeat("p", 33), UUIDKey: "u", DevicesKey: "d"},
	} {
		if err := w.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, prefix := range []string{"", strings.Repeat("p", 32), "site_2"} {
		w := WordPress{TablePrefix: prefix, UUIDKey: "u", DevicesKey: "d"}
		if err := w.Validate(); err != nil {
			t.Errorf("prefix %q: %v", prefix, err)
		}
	}
}
