package train

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// Progress reports training progress on w (stderr). When Bar is true it
// redraws one line with a bar, iteration, loss, images/s and ETA; otherwise it
// prints a plain line every Every iterations (and at the last one).
type Progress struct {
	W     io.Writer
	Name  string // tool name, the prefix of plain lines
	Total int    // last iteration (exclusive)
	Bar   bool
	Every int

	start     time.Time
	startIter int
}

// UseBar reports whether progress on f should be a bar: f is a terminal and
// NO_COLOR is unset (convention 5).
func UseBar(f any) bool {
	file, ok := f.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	return term.IsTerminal(int(file.Fd()))
}

// Start marks the wall-clock origin for ETA; startIter is the number of
// iterations completed before this process ran any (after a resume, the
// checkpoint's).
func (p *Progress) Start(startIter int) {
	p.start = time.Now()
	p.startIter = startIter
}

// Update reports that done iterations have completed (counted from 1, as
// in metrics.jsonl), the last with the given loss and throughput.
func (p *Progress) Update(done int, loss, imagesPerS float64) {
	eta := "?"
	if el := time.Since(p.start); done > p.startIter {
		per := el / time.Duration(done-p.startIter)
		eta = (per * time.Duration(p.Total-done)).Round(time.Second).String()
	}
	if p.Bar {
		const width = 24
		n := 0
		if p.Total > 0 {
			n = width * done / p.Total
		}
		fmt.Fprintf(p.W, "\r%s [%s%s] %d/%d loss %.4f %.1f img/s ETA %s\x1b[K",
			p.Name, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, p.Total, loss, imagesPerS, eta)
		if done >= p.Total {
			fmt.Fprintln(p.W)
		}
		return
	}
	every := p.Every
	if every <= 0 {
		every = 20
	}
	if done%every == 0 || done >= p.Total || done == p.startIter+1 {
		fmt.Fprintf(p.W, "%s: iter %d/%d loss %.4f %.1f img/s eta %s\n", p.Name, done, p.Total, loss, imagesPerS, eta)
	}
}
