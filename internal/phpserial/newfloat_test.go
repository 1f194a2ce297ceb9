package phpserial

// NewFloat makes a float value; the directory never stores one, the
// tests do.
func NewFloat(f float64) Value { return Value{Kind: Float, Float: f} }
