// Package prplot draws precision/recall curves (metrics.PRCurve, from
// metrics.Report.Curves) as PNG files with gonum.org/v1/plot, for
// detect-eval --pr-dir.
//
// It is a package of its own so that gonum/plot (and the fonts it embeds)
// is linked only into the tools that plot, not into every tool that scores
// detections through pkg/metrics.
//
// Imports (make vet checks it): of this module only pkg/atomicfile,
// pkg/metrics; never gorgonia, directly or through another package.
package prplot
