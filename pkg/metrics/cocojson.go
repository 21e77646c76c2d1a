package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// ReadCOCOGroundTruth reads a COCO instances JSON file (images, categories,
// annotations with bbox, area and iscrowd).
func ReadCOCOGroundTruth(path string) (*GroundTruth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCOCOGroundTruth(path, data)
}

type jsonImage struct {
	ID       *int64 `json:"id"`
	FileName string `json:"file_name"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

type jsonCategory struct {
	ID   *int64 `json:"id"`
	Name string `json:"name"`
}

type jsonAnnotation struct {
	ID         *int64          `json:"id"`
	ImageID    *int64          `json:"image_id"`
	CategoryID *int64          `json:"category_id"`
	BBox       []float64       `json:"bbox"`
	Area       *float64        `json:"area"`
	IsCrowd    json.RawMessage `json:"iscrowd"`
}

type jsonGT struct {
	Images      *[]jsonImage      `json:"images"`
	Categories  *[]jsonCategory   `json:"categories"`
	Annotations *[]jsonAnnotation `json:"annotations"`
}

// ParseCOCOGroundTruth parses COCO instances JSON; name is used in errors
// (normally the file name). Required: images[].id, categories[].id,
// annotations[].{id, image_id, category_id, bbox (4 numbers), area}.
// "iscrowd" may be 0/1 or false/true and defaults to 0. A file's "ignore"
// field is not read (pycocotools overwrites it with iscrowd). An annotation
// whose image or category is not listed is an error (pycocotools would drop
// it silently).
func ParseCOCOGroundTruth(name string, data []byte) (*GroundTruth, error) {
	var f jsonGT
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, jsonError(name, data, err)
	}
	if f.Images == nil {
		return nil, fmt.Errorf("%s: no \"images\" list: not a COCO ground-truth file", name)
	}
	if f.Categories == nil {
		return nil, fmt.Errorf("%s: no \"categories\" list: not a COCO ground-truth file", name)
	}
	gt := &GroundTruth{}
	for i, im := range *f.Images {
		if im.ID == nil {
			return nil, fmt.Errorf("%s: images[%d] has no \"id\"", name, i)
		}
		gt.Images = append(gt.Images, Image{ID: *im.ID, FileName: im.FileName, Width: im.Width, Height: im.Height})
	}
	for i, c := range *f.Categories {
		if c.ID == nil {
			return nil, fmt.Errorf("%s: categories[%d] has no \"id\"", name, i)
		}
		gt.Categories = append(gt.Categories, Category{ID: *c.ID, Name: c.Name})
	}
	if f.Annotations != nil {
		gt.Annotations = make([]Annotation, 0, len(*f.Annotations))
		for i, a := range *f.Annotations {
			switch {
			case a.ID == nil:
				return nil, fmt.Errorf("%s: annotations[%d] has no \"id\"", name, i)
			case a.ImageID == nil:
				return nil, fmt.Errorf("%s: annotations[%d] (id %d) has no \"image_id\"", name, i, *a.ID)
			case a.CategoryID == nil:
				return nil, fmt.Errorf("%s: annotations[%d] (id %d) has no \"category_id\"", name, i, *a.ID)
			case len(a.BBox) != 4:
				return nil, fmt.Errorf("%s: annotations[%d] (id %d): \"bbox\" must be 4 numbers [x, y, w, h], got %d", name, i, *a.ID, len(a.BBox))
			case a.Area == nil:
				return nil, fmt.Errorf("%s: annotations[%d] (id %d) has no \"area\" (COCOeval needs it for the area ranges)", name, i, *a.ID)
			}
			crowd, err := parseCrowd(a.IsCrowd)
			if err != nil {
				return nil, fmt.Errorf("%s: annotations[%d] (id %d): %v", name, i, *a.ID, err)
			}
			gt.Annotations = append(gt.Annotations, Annotation{
				ID: *a.ID, ImageID: *a.ImageID, CategoryID: *a.CategoryID,
				BBox: [4]float64{a.BBox[0], a.BBox[1], a.BBox[2], a.BBox[3]}, Area: *a.Area, Crowd: crowd,
			})
		}
	}
	if err := gt.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return gt, nil
}

func parseCrowd(raw json.RawMessage) (bool, error) {
	s := strings.TrimSpace(string(raw))
	switch s {
	case "", "null", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, fmt.Errorf("\"iscrowd\" must be 0, 1, false or true, got %s", s)
}

// Validate checks that image and category ids are unique, annotation ids
// unique, and every annotation refers to a listed image and category.
func (gt *GroundTruth) Validate() error {
	imgs := make(map[int64]bool, len(gt.Images))
	for _, im := range gt.Images {
		if imgs[im.ID] {
			return fmt.Errorf("image id %d appears twice", im.ID)
		}
		imgs[im.ID] = true
	}
	cats := make(map[int64]bool, len(gt.Categories))
	for _, c := range gt.Categories {
		if cats[c.ID] {
			return fmt.Errorf("category id %d appears twice", c.ID)
		}
		cats[c.ID] = true
	}
	anns := make(map[int64]bool, len(gt.Annotations))
	for i, a := range gt.Annotations {
		if anns[a.ID] {
			return fmt.Errorf("annotations[%d]: annotation id %d appears twice", i, a.ID)
		}
		anns[a.ID] = true
		if !imgs[a.ImageID] {
			return fmt.Errorf("annotations[%d] (id %d): image id %d is not among the images", i, a.ID, a.ImageID)
		}
		if !cats[a.CategoryID] {
			return fmt.Errorf("annotations[%d] (id %d): category id %d is not among the categories", i, a.ID, a.CategoryID)
		}
		if !finite4(a.BBox) || math.IsNaN(a.Area) || math.IsInf(a.Area, 0) {
			return fmt.Errorf("annotations[%d] (id %d): bbox %v or area %v is not finite", i, a.ID, a.BBox, a.Area)
		}
	}
	return nil
}

// ReadCOCOResults reads a COCO results file (a JSON array of {image_id,
// category_id, bbox, score}) and checks it against gt.
func ReadCOCOResults(path string, gt *GroundTruth) ([]Detection, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCOCOResults(path, data, gt)
}

type jsonDet struct {
	ImageID    *int64    `json:"image_id"`
	CategoryID *int64    `json:"category_id"`
	BBox       []float64 `json:"bbox"`
	Score      *float64  `json:"score"`
}

// ParseCOCOResults parses a COCO results array; name is used in errors.
// Errors name the detection's index and its line and column: malformed JSON,
// a missing field, a bbox that is not 4 numbers or has a negative width or
// height, a NaN or infinite value (NaN/Infinity are not JSON; a score like
// 1e999 overflows), an image id or category id not in gt (when gt is not
// nil). Fields other than these four (area, id, iscrowd, segmentation) are
// ignored, as COCO.loadRes recomputes them for boxes. An empty array is
// valid and gives no detections.
func ParseCOCOResults(name string, data []byte, gt *GroundTruth) ([]Detection, error) {
	var imgs, cats map[int64]bool
	if gt != nil {
		imgs = make(map[int64]bool, len(gt.Images))
		for _, im := range gt.Images {
			imgs[im.ID] = true
		}
		cats = make(map[int64]bool, len(gt.Categories))
		for _, c := range gt.Categories {
			cats[c.ID] = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s: empty file: expected a JSON array of detections", name)
		}
		return nil, jsonError(name, data, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s: expected a JSON array of detections, found %v at %s", name, describeToken(tok), lineCol(data, dec.InputOffset()-1))
	}
	var dets []Detection
	for i := 0; dec.More(); i++ {
		start := skipWS(data, dec.InputOffset())
		if start < int64(len(data)) && data[start] == ',' {
			start = skipWS(data, start+1)
		}
		where := func() string { return fmt.Sprintf("%s: detection %d (%s)", name, i, lineCol(data, start)) }
		var d jsonDet
		if err := dec.Decode(&d); err != nil {
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &se):
				// A stream decoder's offsets do not count the bytes its
				// tokenizer consumed; a whole-document parse gives the place.
				var v any
				if uerr := json.Unmarshal(data, &v); uerr != nil {
					return nil, jsonError(name, data, uerr)
				}
				return nil, fmt.Errorf("%s: malformed JSON: %v", where(), se)
			case errors.As(err, &te):
				return nil, fmt.Errorf("%s: %s", where(), typeErrorText(te))
			}
			return nil, jsonError(name, data, err)
		}
		switch {
		case d.ImageID == nil:
			return nil, fmt.Errorf("%s: no \"image_id\"", where())
		case d.CategoryID == nil:
			return nil, fmt.Errorf("%s: no \"category_id\"", where())
		case d.Score == nil:
			return nil, fmt.Errorf("%s: no \"score\"", where())
		case d.BBox == nil:
			return nil, fmt.Errorf("%s: no \"bbox\" (only box results are supported)", where())
		case len(d.BBox) != 4:
			return nil, fmt.Errorf("%s: \"bbox\" must be 4 numbers [x, y, w, h], got %d", where(), len(d.BBox))
		case d.BBox[2] < 0 || d.BBox[3] < 0:
			return nil, fmt.Errorf("%s: bbox %v has a negative width or height", where(), d.BBox)
		}
		if imgs != nil && !imgs[*d.ImageID] {
			return nil, fmt.Errorf("%s: image id %d is not in the ground truth", where(), *d.ImageID)
		}
		if cats != nil && !cats[*d.CategoryID] {
			return nil, fmt.Errorf("%s: category id %d is not in the ground truth", where(), *d.CategoryID)
		}
		dets = append(dets, Detection{ImageID: *d.ImageID, CategoryID: *d.CategoryID,
			BBox: [4]float64{d.BBox[0], d.BBox[1], d.BBox[2], d.BBox[3]}, Score: *d.Score})
	}
	if _, err := dec.Token(); err != nil { // closing ]
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: truncated: the file ends at %s after %d detections, without the ']' that closes the array (cut short?)", name, lineCol(data, int64(len(data))), len(dets))
		}
		return nil, jsonError(name, data, err)
	}
	if off := skipWS(data, dec.InputOffset()); off < int64(len(data)) {
		return nil, fmt.Errorf("%s: unexpected data after the detections array at %s", name, lineCol(data, off))
	}
	return dets, nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			return "an object"
		}
		return string(v)
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}

func skipWS(data []byte, off int64) int64 {
	for off < int64(len(data)) {
		switch data[off] {
		case ' ', '\t', '\n', '\r':
			off++
			continue
		}
		break
	}
	return off
}

// lineCol renders a byte offset as "line L, column C" (both 1-based).
func lineCol(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line := 1 + bytes.Count(data[:off], []byte{'\n'})
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Sprintf("line %d, column %d", line, col)
}

// syntaxError reports a syntax error at byte off (0-based), naming
// NaN/Infinity, which Python's json module writes but JSON does not allow.
func syntaxError(name string, data []byte, off int64, se *json.SyntaxError) error {
	off = max(0, min(off, int64(len(data))))
	msg := se.Error()
	rest := data[off:]
	for _, w := range []string{"NaN", "Infinity", "-Infinity"} {
		if bytes.HasPrefix(rest, []byte(w)) {
			msg = w + " is not a JSON number (non-finite values are not allowed)"
		}
	}
	return fmt.Errorf("%s: malformed JSON at %s: %s", name, lineCol(data, off), msg)
}

func typeErrorText(te *json.UnmarshalTypeError) string {
	what := "value " + te.Value
	if strings.HasPrefix(te.Value, "number") {
		what = te.Value + " (out of range, or not an integer where one is needed)"
	}
	field := te.Field
	if field == "" {
		field = "(top level)"
	}
	return fmt.Sprintf("field %s: %s, want %s", field, what, te.Type)
}

// jsonError turns encoding/json errors from whole-document decoding into
// "name: line L, column C: what".
func jsonError(name string, data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: malformed JSON: unexpected end of file (truncated?)", name)
	case errors.As(err, &se):
		// Offset counts the bytes read, the bad one included.
		return syntaxError(name, data, se.Offset-1, se)
	case errors.As(err, &te):
		return fmt.Errorf("%s: near %s: %s", name, lineCol(data, te.Offset), typeErrorText(te))
	}
	return fmt.Errorf("%s: %v", name, err)
}

// WriteCOCOResults writes dets as a COCO results file: a JSON array with one
// {"image_id", "category_id", "bbox": [x, y, w, h], "score"} object per line,
// numbers in their shortest exact form (ParseCOCOResults reads back the same
// values). It returns an error for a non-finite number, which JSON cannot hold.
func WriteCOCOResults(w io.Writer, dets []Detection) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	var buf []byte
	for i, d := range dets {
		if !finite4(d.BBox) || math.IsNaN(d.Score) || math.IsInf(d.Score, 0) {
			return fmt.Errorf("detection %d: non-finite bbox %v or score %v", i, d.BBox, d.Score)
		}
		buf = buf[:0]
		if i > 0 {
			buf = append(buf, ",\n "...)
		}
		buf = append(buf, `{"image_id": `...)
		buf = strconv.AppendInt(buf, d.ImageID, 10)
		buf = append(buf, `, "category_id": `...)
		buf = strconv.AppendInt(buf, d.CategoryID, 10)
		buf = append(buf, `, "bbox": [`...)
		for j, v := range d.BBox {
			if j > 0 {
				buf = append(buf, ", "...)
			}
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		}
		buf = append(buf, `], "score": `...)
		buf = strconv.AppendFloat(buf, d.Score, 'g', -1, 64)
		buf = append(buf, '}')
		if _, err := bw.Write(buf); err != nil {
			return err
		}
	}
	bw.WriteString("]\n")
	return bw.Flush()
}
