package cli

import "testing"

func TestTableEscapesControlCharacters(t *testing.T) {
	got := escapeControl("ok\x1b[2Jwiped\ttab\nline\u009b")
	if want := `ok\x1b[2Jwiped\ttab\nline\u009b`; got != want {
		t.Fatalf("escapeControl = %q, want %q", got, want)
	}
	if escapeControl("héllo +4915****0000") != "héllo +4915****0000" {
		t.Fatal("printable text changed")
	}
}
