package phpserial

import (
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

// nested is n arrays each holding the next under key 0, around N;.
func nested(n int) string {
	return strings.Repeat("a:1:{i:0;", n) + "N;" + strings.Repeat("}", n)
}

// TestUnmarshalNestingLimitIsExact: 64 levels of arrays are read, 65 are
// refused as too deep.
func TestUnmarshalNestingLimitIsExact(t *testing.T) {
	if _, err := Unmarshal([]byte(nested(maxDepth))); err != nil {
		t.Fatalf("%d levels: %v", maxDepth, err)
	}
	if _, err := Unmarshal([]byte(nested(maxDepth + 1))); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("%d levels: %v, want nested deeper", maxDepth+1, err)
	}
}

// TestUnmarshalBoundsNestingInKeys: arrays nested in key position count
// towards the depth limit too, so hostile input cannot recurse without
// bound there before the key is found not to be a scalar.
func TestUnmarshalBoundsNestingInKeys(t *testing.T) {
	in := strings.Repeat("a:1:{", 200) + "i:0;N;" + strings.Repeat("N;}", 200)
	if _, err := Unmarshal([]byte(in)); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("200 arrays nested as keys: %v, want nested deeper", err)
	}
}

// TestUnmarshalRefusesLengthsPastTheEnd: a string or array that claims
// more than the data holds is an error, never a panic.
func TestUnmarshalRefusesLengthsPastTheEnd(t *testing.T) {
	for _, s := range []string{`s:9:"abc";`, `s:6:"abc";`, `s:1000000:"";`, `a:3:{i:0;N;}`, `O:9:"A":0:{}`} {
		if _, err := Unmarshal([]byte(s)); !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v, want ErrSyntax", s, err)
		}
	}
	if _, err := Unmarshal([]byte(`i:;`)); err == nil || !strings.Contains(err.Error(), `bad integer ""`) {
		t.Errorf("an empty integer: %v, want bad integer", err)
	}
}

// TestUnmarshalReadsInfinitiesAndNaN with their sign.
func TestUnmarshalReadsInfinitiesAndNaN(t *testing.T) {
	for s, check := range map[string]func(float64) bool{
		`d:INF;`:  func(f float64) bool { return math.IsInf(f, 1) },
		`d:-INF;`: func(f float64) bool { return math.IsInf(f, -1) },
		`d:NAN;`:  math.IsNaN,
	} {
		v, err := Unmarshal([]byte(s))
		if err != nil || v.Kind != Float || !check(v.Float) || string(Marshal(v)) != s {
			t.Errorf("%s: %+v, %v", s, v, err)
		}
	}
}

// TestMarshalFloatFormSwitchesWherePHPDoes: PHP writes a float in fixed
// form from 1.0E-4 up to 1.0E+16 and in exponent form outside, with every
// significant digit.
func TestMarshalFloatFormSwitchesWherePHPDoes(t *testing.T) {
	for f, want := range map[float64]string{
		0.0001:                 `d:0.0001;`,
		0.00001:                `d:1.0E-5;`,
		1e16:                   `d:10000000000000000;`,
		1e17:                   `d:1.0E+17;`,
		1.25e-7:                `d:1.25E-7;`,
		-1.2345678901234567e30: `d:-1.2345678901234567E+30;`,
	} {
		v := NewFloat(f)
		if got := string(Marshal(&v)); got != want {
			t.Errorf("%g: got %s, want %s", f, got, want)
		}
	}
}

// allocatedBy is the number of bytes f allocates.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestUnmarshalRefusesImpossibleCountsBeforeAllocating: an array that
// claims more entries than the bytes after it could hold is refused before
// room for them is made, wherever it sits in the input, so a short hostile
// input cannot make the decoder allocate far more than its own size.
func TestUnmarshalRefusesImpossibleCountsBeforeAllocating(t *testing.T) {
	for name, in := range map[string]string{
		// 120 000 bytes of entries after the brace hold at most 20 000.
		"at the start": "a:100000:{" + strings.Repeat("i:0;N;", 20000) + "}",
		// Late in the input: nothing after the brace can hold an entry.
		"after a long string": `a:2:{i:0;s:100000:"` + strings.Repeat("x", 100000) + `";i:1;a:30000:{}}`,
	} {
		var err error
		n := allocatedBy(func() { _, err = Unmarshal([]byte(in)) })
		if err == nil || !strings.Contains(err.Error(), "entries cannot fit") {
			t.Errorf("%s: %v, want the count refused", name, err)
		}
		if limit := uint64(4 * len(in)); n > limit {
			t.Errorf("%s: refusing %d bytes of input allocated %d bytes, want at most %d", name, len(in), n, limit)
		}
	}
}
