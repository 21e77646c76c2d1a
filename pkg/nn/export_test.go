package nn

// For the external tests (package nn_test).

// SetBlockedTraining turns planBlocked on or off (YOLODISTILL_NO_BLOCKED)
// for graphs built afterwards.
func SetBlockedTraining(on bool) { blockedTraining = on }

// BlockedTensors counts g's tensors kept in a blocked layout.
func BlockedTensors(g *Graph) int {
	n := 0
	for _, t := range g.b.tensors {
		if t.blk > 0 {
			n++
		}
	}
	return n
}
