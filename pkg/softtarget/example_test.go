package softtarget_test

import (
	"bytes"
	"fmt"
	"io"

	"yolodistill/pkg/anchor"
	"yolodistill/pkg/softtarget"
)

// A teacher dump written as a stream (as `teacher-dump --out -` does) and read
// back by a student: every view keeps its augmentation record and outputs.
func Example() {
	meta := softtarget.Meta{
		TeacherConfigHash: "sha256:0123",
		Classes:           []string{"RBC", "WBC", "Platelets"},
		Anchors:           anchor.Defaults(),
		Masks:             anchor.DefaultMasks(),
		Encoding:          softtarget.Encoding{Kind: softtarget.Sparse, Half: true, Threshold: 0.5},
	}
	var pipe bytes.Buffer
	w, _ := softtarget.NewStreamWriter(&pipe, meta)
	v := &softtarget.View{ImageID: 7, File: "JPEGImages/BloodImage_00007.jpg", ViewIndex: 0, Aug: []byte("flip=1"), InputH: 64, InputW: 64}
	for s, stride := range []int{32, 16, 8} {
		g := 64 / stride
		ch := meta.Channels(s) // 3 anchors * (5 + 3 classes) = 24
		t := softtarget.Tensor{Shape: []int{ch, g, g}, Data: make([]float32, ch*g*g)}
		for i := range t.Data {
			t.Data[i] = -6 // objectness -6: not confident, box and classes not stored
		}
		v.Outputs = append(v.Outputs, t)
	}
	if err := w.Write(v); err != nil {
		fmt.Println(err)
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
	}

	r, err := softtarget.NewReader(&pipe, "-")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := r.CheckCompatible(softtarget.Meta{TeacherConfigHash: "sha256:0123", Classes: meta.Classes}); err != nil {
		fmt.Println(err)
	}
	var got softtarget.View
	for r.Next(&got) == nil {
		out := got.Outputs[2] // stride 8: [24, 8, 8]
		fmt.Println(got.File, string(got.Aug), out.Shape, "obj", out.Data[4*64], "x", out.Data[0], "stored", got.Stored[2][0])
	}
	fmt.Println(r.Next(&got) == io.EOF)
	// Output:
	// JPEGImages/BloodImage_00007.jpg flip=1 [24 8 8] obj -6 x 0 stored false
	// true
}
