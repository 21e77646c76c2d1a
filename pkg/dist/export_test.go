package dist

// SetPiece32 sets how many float32 values SumFloat32 reduces per round and
// returns a function restoring the old value.
func SetPiece32(n int) func() {
	old := piece32
	piece32 = n
	return func() { piece32 = old }
}
