package phpserial

import (
	"bytes"
	"errors"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// written holds what PHP 8.2's serialize() writes (checked with php-cli:
// TestMarshalMatchesPHP runs it again when php is installed).
var written = []string{
	`N;`,
	`b:1;`,
	`b:0;`,
	`i:0;`,
	`i:-9223372036854775808;`,
	`d:0.1;`,
	`d:-0;`,
	`d:1.0E+25;`,
	`d:1.5E-7;`,
	`d:INF;`,
	`d:NAN;`,
	`s:0:"";`,
	`s:6:"grüß";`,
	`s:4:"a";b";`,
	`a:0:{}`,
	`a:2:{i:0;s:1:"x";i:5;b:1;}`,
	`a:2:{s:6:"phone1";a:3:{s:4:"name";s:11:"Küche Tür";s:6:"status";s:3:"off";s:5:"added";d:1733136000.5;}s:6:"phone2";a:2:{s:4:"name";s:1:"B";s:6:"status";b:0;}}`,
	`O:8:"stdClass":1:{s:1:"a";a:1:{i:0;N;}}`,
}

func TestRoundTripIsByteExact(t *testing.T) {
	for _, s := range written {
		v, err := Unmarshal([]byte(s))
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if got := string(Marshal(v)); got != s {
			t.Errorf("round trip:\n got %s\nwant %s", got, s)
		}
	}
}

func TestChangingOneValueLeavesTheRestAsWritten(t *testing.T) {
	in := written[len(written)-2]
	v, err := Unmarshal([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := v.Get("phone1")
	status, _ := dev.Get("status")
	*status = NewString("on")
	want := strings.Replace(in, `s:6:"status";s:3:"off";`, `s:6:"status";s:2:"on";`, 1)
	if got := string(Marshal(v)); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestMarshalOfNewValues(t *testing.T) {
	for _, tc := range []struct {
		v    Value
		want string
	}{
		{NewString("grüß"), `s:6:"grüß";`},
		{NewInt(-12), `i:-12;`},
		{NewBool(true), `b:1;`},
		{NewFloat(0.1), `d:0.1;`},
		{NewFloat(1), `d:1;`},
		{NewFloat(-0.0001), `d:-0.0001;`},
		{NewFloat(1e25), `d:1.0E+25;`},
		{NewFloat(1.5e-7), `d:1.5E-7;`},
		{NewFloat(math.Copysign(0, -1)), `d:-0;`},
		{NewFloat(math.Inf(-1)), `d:-INF;`},
	} {
		if got := string(Marshal(&tc.v)); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}

// TestMarshalMatchesPHP compares new floats with what php-cli writes, when
// it is installed.
func TestMarshalMatchesPHP(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		if os.Getenv("MSGBROKER_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("php (Debian php-cli) is required to compare with PHP's own serialize()")
		}
		t.Skip("php is not installed; set MSGBROKER_TEST_REQUIRE_SERVICES=1 to make this fail")
	}
	floats := []float64{0.1, 1, 1e14, 123456789012345678, 1.5e16, 0.00012, 1e15, 1e16, 123456789012345678, 0.0001, 0.00001, 1.5e-7, -2.5, 1e300, 5e-324}
	var script strings.Builder
	script.WriteString("foreach ([")
	for _, f := range floats {
		script.WriteString("(float)" + string(appendFloat(nil, f)) + ",")
	}
	script.WriteString(`] as $f) echo serialize($f), "\n";`)
	out, err := exec.Command("php", "-r", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, f := range floats {
		v := NewFloat(f)
		if got := string(Marshal(&v)); i >= len(lines) || got != lines[i] {
			t.Errorf("%g: got %s, php wrote %v", f, got, lines[i:i+1])
		}
	}
}

func TestUnmarshalRefusesWhatPHPWouldNotRead(t *testing.T) {
	for _, s := range []string{
		``, `N`, `b:2;`, `i:;`, `i:1x;`, `d:0x10;`, `d:inf;`, `s:5:"abc";`, `s:-1:"";`, `s:01:"a";`,
		`s:1:"a"`, `a:1:{}`, `a:1:{i:0;}`, `a:1:{d:1;i:0;}`, `a:1:{a:0:{}i:0;}`, `a:99999999:{}`,
		`r:1;`, `R:1;`, `C:3:"Foo":0:{}`, `N;N;`, `x:1;`,
		strings.Repeat("a:1:{i:0;", 70) + "N;" + strings.Repeat("}", 70),
	} {
		if v, err := Unmarshal([]byte(s)); err == nil || !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: got %v, %v", s, v, err)
		}
	}
}

// FuzzRoundTrip: whatever Unmarshal accepts, Marshal writes back
// unchanged.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range written {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Unmarshal(data)
		if err != nil {
			return
		}
		if got := Marshal(v); !bytes.Equal(got, data) {
			t.Fatalf("round trip of %q gave %q", data, got)
		}
	})
}
