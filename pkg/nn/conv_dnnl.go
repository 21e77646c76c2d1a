//go:build dnnl && cgo

package nn

/*
#cgo LDFLAGS: -ldnnl -lgomp
#include <stdlib.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int n);

// One oneDNN convolution primitive (forward, backward data or backward
// weights) over plain NCHW / OIHW (GOIHW) user buffers. The primitive picks
// its own layouts (format "any"); an argument whose layout differs from the
// user's goes through a reorder into (or out of) a work buffer.
enum { NN_MAXARGS = 4 };
typedef struct {
	int arg;                      // DNNL_ARG_*
	int out;                      // the primitive writes it
	dnnl_memory_desc_t user, md;  // the caller's plain layout, the primitive's
	dnnl_primitive_t reorder;     // user -> md (inputs) or md -> user (outputs); NULL when equal
	size_t off, size;             // the md buffer in the work area (bytes), when reordered
} nn_arg;

typedef struct {
	dnnl_primitive_t prim;
	int nargs;
	nn_arg args[NN_MAXARGS];
	dnnl_memory_desc_t scratch_md;
	size_t scratch_off;
	size_t work;  // bytes of the work area: reorder buffers and scratchpad
	int threads;  // OpenMP threads the primitive was made for and runs on
	char impl[64];
} nn_conv;

static dnnl_engine_t nn_engine;

static int nn_init(void) {
	omp_set_num_threads(1);
	return dnnl_engine_create(&nn_engine, dnnl_cpu, 0);
}

static int nn_isa(void) { return (int)dnnl_get_effective_cpu_isa(); }

static size_t nn_align(size_t n) { return (n + 63) & ~(size_t)63; }

static dnnl_status_t nn_reorder_pd(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, dnnl_primitive_t *r) {
	dnnl_primitive_desc_t pd;
	dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, nn_engine, to, nn_engine, NULL);
	if (s) return s;
	s = dnnl_primitive_create(r, pd);
	dnnl_primitive_desc_destroy(pd);
	return s;
}

// nn_conv_create builds the primitive. kind: 0 forward training, 1 forward
// inference, 2 backward data, 3 backward weights. act (forward only): 0 none,
// 1 relu, 2 leaky relu with slope alpha, applied after the bias.
// dims: N C H W O K stride pad groups; bias: a bias argument (forward only);
// threads: the OpenMP threads it splits its work over.
static int nn_conv_create(nn_conv *c, int kind, const long *d, int bias, int act, float alpha, int threads) {
	memset(c, 0, sizeof *c);
	c->threads = threads;
	omp_set_num_threads(threads);
	long N = d[0], C = d[1], H = d[2], W = d[3], O = d[4], K = d[5], S = d[6], P = d[7], G = d[8];
	long OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
	dnnl_memory_desc_t src, wei, dst, bia, src_any, wei_any, dst_any;
	dnnl_dims_t sd = {N, C, H, W}, dd = {N, O, OH, OW}, bd = {O};
	dnnl_dims_t wd = {O, C / G, K, K}, gwd = {G, O / G, C / G, K, K};
	dnnl_status_t s;
	if ((s = dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nchw))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nchw))) return s;
	if (G == 1) s = dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_oihw);
	else s = dnnl_memory_desc_init_by_tag(&wei, 5, gwd, dnnl_f32, dnnl_goihw);
	if (s) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&bia, 1, bd, dnnl_f32, dnnl_x))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&src_any, 4, sd, dnnl_f32, dnnl_format_tag_any))) return s;
	if ((s = dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, dnnl_f32, dnnl_format_tag_any))) return s;
	if (G == 1) s = dnnl_memory_desc_init_by_tag(&wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any);
	else s = dnnl_memory_desc_init_by_tag(&wei_any, 5, gwd, dnnl_f32, dnnl_format_tag_any);
	if (s) return s;
	dnnl_dims_t st = {S, S}, pad = {P, P};
	dnnl_convolution_desc_t cd;
	dnnl_primitive_desc_t hint = NULL;
	if (kind >= 2) { // backward needs the forward primitive descriptor as a hint
		if ((s = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
			&src_any, &wei_any, NULL, &dst_any, st, pad, pad))) return s;
		if ((s = dnnl_primitive_desc_create(&hint, &cd, NULL, nn_engine, NULL))) return s;
	}
	if (kind <= 1) {
		s = dnnl_convolution_forward_desc_init(&cd, kind == 0 ? dnnl_forward_training : dnnl_forward_inference,
			dnnl_convolution_direct, &src_any, &wei_any, bias ? &bia : NULL, &dst_any, st, pad, pad);
	} else if (kind == 2) {
		s = dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, &dst_any, st, pad, pad);
	} else {
		s = dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &src_any, &wei_any, NULL, &dst_any, st, pad, pad);
	}
	if (s) goto out;
	dnnl_primitive_attr_t attr;
	if ((s = dnnl_primitive_attr_create(&attr))) goto out;
	dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
	if (act) {
		dnnl_post_ops_t po;
		dnnl_post_ops_create(&po);
		dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, act == 2 ? alpha : 0.0f, 0.0f);
		dnnl_primitive_attr_set_post_ops(attr, po);
		dnnl_post_ops_destroy(po);
	}
	dnnl_primitive_desc_t pd;
	s = dnnl_primitive_desc_create(&pd, &cd, attr, nn_engine, hint);
	dnnl_primitive_attr_destroy(attr);
	if (s) goto out;
	const char *impl = NULL;
	dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
	if (impl) strncpy(c->impl, impl, sizeof c->impl - 1);
	struct { int arg, out; dnnl_query_t q; const dnnl_memory_desc_t *user; } spec[4];
	int n = 0;
	switch (kind) {
	case 0: case 1:
		spec[n++] = (typeof(spec[0])){DNNL_ARG_SRC, 0, dnnl_query_src_md, &src};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_WEIGHTS, 0, dnnl_query_weights_md, &wei};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_DST, 1, dnnl_query_dst_md, &dst};
		if (bias) spec[n++] = (typeof(spec[0])){DNNL_ARG_BIAS, 0, dnnl_query_weights_md, &bia};
		break;
	case 2:
		spec[n++] = (typeof(spec[0])){DNNL_ARG_DIFF_DST, 0, dnnl_query_diff_dst_md, &dst};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_WEIGHTS, 0, dnnl_query_weights_md, &wei};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_DIFF_SRC, 1, dnnl_query_diff_src_md, &src};
		break;
	default:
		spec[n++] = (typeof(spec[0])){DNNL_ARG_SRC, 0, dnnl_query_src_md, &src};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_DIFF_DST, 0, dnnl_query_diff_dst_md, &dst};
		spec[n++] = (typeof(spec[0])){DNNL_ARG_DIFF_WEIGHTS, 1, dnnl_query_diff_weights_md, &wei};
	}
	size_t off = 0;
	for (int i = 0; i < n; i++) {
		nn_arg *a = &c->args[i];
		a->arg = spec[i].arg;
		a->out = spec[i].out;
		a->user = *spec[i].user;
		const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, spec[i].q, spec[i].arg == DNNL_ARG_BIAS ? 1 : 0);
		a->md = *md;
		if (dnnl_memory_desc_equal(&a->user, &a->md)) continue;
		s = a->out ? nn_reorder_pd(&a->md, &a->user, &a->reorder) : nn_reorder_pd(&a->user, &a->md, &a->reorder);
		if (s) { dnnl_primitive_desc_destroy(pd); goto out; }
		a->off = off;
		a->size = dnnl_memory_desc_get_size(&a->md);
		off += nn_align(a->size);
	}
	c->nargs = n;
	c->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	c->scratch_off = off;
	off += nn_align(dnnl_memory_desc_get_size(&c->scratch_md));
	c->work = off;
	s = dnnl_primitive_create(&c->prim, pd);
	dnnl_primitive_desc_destroy(pd);
out:
	if (hint) dnnl_primitive_desc_destroy(hint);
	return s;
}

static dnnl_status_t nn_reorder_run(dnnl_primitive_t r, const dnnl_memory_desc_t *from, void *pf, const dnnl_memory_desc_t *to, void *pt, dnnl_stream_t strm) {
	dnnl_memory_t mf, mt;
	dnnl_status_t s;
	if ((s = dnnl_memory_create(&mf, from, nn_engine, pf))) return s;
	if ((s = dnnl_memory_create(&mt, to, nn_engine, pt))) { dnnl_memory_destroy(mf); return s; }
	dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
	s = dnnl_primitive_execute(r, strm, 2, args);
	dnnl_memory_destroy(mf);
	dnnl_memory_destroy(mt);
	return s;
}

// nn_conv_move reorders argument i between the caller's layout (user) and
// the primitive's (prim, args[i].size bytes): an input from user into prim
// (for nn_conv_exec's packed mask), an output from prim into user.
static int nn_conv_move(nn_conv *c, int i, void *user, void *prim) {
	omp_set_num_threads(1);
	nn_arg *a = &c->args[i];
	if (!a->reorder) {
		if (a->out) memcpy(user, prim, dnnl_memory_desc_get_size(&a->user));
		else memcpy(prim, user, dnnl_memory_desc_get_size(&a->user));
		return 0;
	}
	dnnl_stream_t strm;
	dnnl_status_t s = dnnl_stream_create(&strm, nn_engine, dnnl_stream_default_flags);
	if (s) return s;
	if (a->out) s = nn_reorder_run(a->reorder, &a->md, prim, &a->user, user, strm);
	else s = nn_reorder_run(a->reorder, &a->user, user, &a->md, prim, strm);
	dnnl_stream_destroy(strm);
	return s;
}

// nn_per_image reports whether md (a blocked activation layout, no offset)
// holds its images one after the other, each the same size: the batch
// dimension outermost and not blocked.
static int nn_per_image(const dnnl_memory_desc_t *md) {
	if (md->format_kind != dnnl_blocked || md->offset0 != 0 || md->padded_dims[0] != md->dims[0]) return 0;
	const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
	for (int k = 0; k < b->inner_nblks; k++) if (b->inner_idxs[k] == 0) return 0;
	return b->strides[0] * md->dims[0] * 4 == (long)dnnl_memory_desc_get_size(md);
}

// nn_conv_same_image_args reports whether argument i of a and argument j of
// b are both in their primitive's own layout (not the user's), hold their
// images one after the other, and lay out one image alike (their batch
// sizes may differ): a slice of whole images of one fits the other.
static int nn_conv_same_image_args(nn_conv *a, int i, nn_conv *b, int j) {
	dnnl_memory_desc_t x = a->args[i].md, y = b->args[j].md;
	if (!a->args[i].reorder || !b->args[j].reorder || !nn_per_image(&x) || !nn_per_image(&y)) return 0;
	x.dims[0] = x.padded_dims[0] = y.dims[0];
	return dnnl_memory_desc_equal(&x, &y);
}

// nn_conv_arg_block returns 16 when argument i of c is in the nChw16c
// layout, 8 when in nChw8c, else 0.
static int nn_conv_arg_block(nn_conv *c, int i) {
	nn_arg *a = &c->args[i];
	if (!a->reorder || a->md.ndims != 4) return 0;
	dnnl_memory_desc_t ref;
	if (!dnnl_memory_desc_init_by_tag(&ref, 4, a->md.dims, dnnl_f32, dnnl_nChw16c) && dnnl_memory_desc_equal(&a->md, &ref)) return 16;
	if (!dnnl_memory_desc_init_by_tag(&ref, 4, a->md.dims, dnnl_f32, dnnl_nChw8c) && dnnl_memory_desc_equal(&a->md, &ref)) return 8;
	return 0;
}

// nn_conv_same_args reports whether argument i of a has the layout of
// argument j of b.
static int nn_conv_same_args(nn_conv *a, int i, nn_conv *b, int j) {
	return dnnl_memory_desc_equal(&a->args[i].md, &b->args[j].md);
}

// nn_conv_exec runs the primitive on the calling thread (and c->threads-1
// OpenMP threads). p0..p3 are the arguments in args order; an argument
// whose bit is set in packed is already in the primitive's layout. work
// holds c->work bytes.
static int nn_conv_exec(nn_conv *c, void *p0, void *p1, void *p2, void *p3, int packed, void *work) {
	omp_set_num_threads(c->threads);
	void *ptr[NN_MAXARGS] = {p0, p1, p2, p3};
	dnnl_memory_t user[NN_MAXARGS] = {0}, prim[NN_MAXARGS] = {0}, scratch = NULL;
	dnnl_exec_arg_t args[NN_MAXARGS + 1];
	dnnl_stream_t strm;
	dnnl_status_t s = dnnl_stream_create(&strm, nn_engine, dnnl_stream_default_flags);
	if (s) return s;
	char *wk = work;
	for (int i = 0; i < c->nargs && !s; i++) {
		nn_arg *a = &c->args[i];
		if (!a->reorder || (packed >> i & 1)) {
			s = dnnl_memory_create(&prim[i], a->reorder ? &a->md : &a->user, nn_engine, ptr[i]);
			continue;
		}
		if ((s = dnnl_memory_create(&prim[i], &a->md, nn_engine, wk + a->off))) break;
		if (!a->out) s = nn_reorder_run(a->reorder, &a->user, ptr[i], &a->md, wk + a->off, strm);
	}
	if (!s) s = dnnl_memory_create(&scratch, &c->scratch_md, nn_engine, wk + c->scratch_off);
	if (!s) {
		for (int i = 0; i < c->nargs; i++) args[i] = (dnnl_exec_arg_t){c->args[i].arg, prim[i]};
		args[c->nargs] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, scratch};
		s = dnnl_primitive_execute(c->prim, strm, c->nargs + 1, args);
	}
	for (int i = 0; i < c->nargs && !s; i++) {
		nn_arg *a = &c->args[i];
		if (a->out && a->reorder && !(packed >> i & 1))
			s = nn_reorder_run(a->reorder, &a->md, wk + a->off, &a->user, ptr[i], strm);
	}
	for (int i = 0; i < c->nargs; i++) if (prim[i]) dnnl_memory_destroy(prim[i]);
	if (scratch) dnnl_memory_destroy(scratch);
	dnnl_stream_destroy(strm);
	return s;
}
*/
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"
)

// DNNLName names the convolution library compiled in ("" without one).
const DNNLName = "onednn"

// dnnlISA names the highest instruction set oneDNN dispatches to here (its
// kernels, like OpenBLAS's, round differently per instruction set;
// ONEDNN_MAX_CPU_ISA limits it).
func dnnlISA() string {
	switch C.nn_isa() {
	case C.dnnl_cpu_isa_sse41:
		return "sse41"
	case C.dnnl_cpu_isa_avx:
		return "avx"
	case C.dnnl_cpu_isa_avx2:
		return "avx2"
	case C.dnnl_cpu_isa_avx2_vnni:
		return "avx2_vnni"
	case C.dnnl_cpu_isa_avx512_core:
		return "avx512_core"
	case C.dnnl_cpu_isa_avx512_core_vnni:
		return "avx512_core_vnni"
	case C.dnnl_cpu_isa_avx512_core_bf16:
		return "avx512_core_bf16"
	case C.dnnl_cpu_isa_avx512_core_amx:
		return "avx512_core_amx"
	}
	return "isa " + strconv.Itoa(int(C.nn_isa()))
}

var dnnlReady = C.nn_init() == 0 && os.Getenv("YOLODISTILL_NO_DNNL") == ""

// dnnlKind selects a oneDNN convolution primitive.
type dnnlKind int

const (
	dnnlFwdTrain dnnlKind = iota
	dnnlFwdInfer
	dnnlBwdData
	dnnlBwdWeights
)

type dnnlKey struct {
	kind      dnnlKind
	g         convGeom
	bias      bool
	act       Act
	leakSlope float32
	blkSize   int // the blocked layout's channels per block (training, planBlocked); not part of the primitive
	threads   int // OpenMP threads of one call (0 means 1)
}

// dnnlConv is a created primitive; nil when oneDNN has none for the shape.
type dnnlConv struct {
	c    C.nn_conv
	work int // floats of work area per call
}

var dnnlCache struct {
	sync.Mutex
	m map[dnnlKey]*dnnlConv
}

// dnnlPrim returns the primitive for key (created once), or nil.
func dnnlPrim(k dnnlKey) *dnnlConv {
	if !dnnlReady {
		return nil
	}
	dnnlCache.Lock()
	defer dnnlCache.Unlock()
	if p, ok := dnnlCache.m[k]; ok {
		return p
	}
	if dnnlCache.m == nil {
		dnnlCache.m = map[dnnlKey]*dnnlConv{}
	}
	g := k.g
	dims := [9]C.long{C.long(g.N), C.long(g.C), C.long(g.H), C.long(g.W), C.long(g.Cout), C.long(g.K), C.long(g.Stride), C.long(g.Pad), C.long(g.Groups)}
	p := &dnnlConv{}
	act := 0
	switch k.act {
	case ActReLU:
		act = 1
	case ActLeaky:
		act = 2
	}
	bias := 0
	if k.bias {
		bias = 1
	}
	if s := C.nn_conv_create(&p.c, C.int(k.kind), &dims[0], C.int(bias), C.int(act), C.float(k.leakSlope), C.int(max(1, k.threads))); s != 0 {
		if os.Getenv("YOLODISTILL_DNNL_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "nn: oneDNN has no convolution %d for %+v (status %d); using our kernels\n", k.kind, g, s)
		}
		p = nil
	} else {
		p.work = (int(p.c.work) + 3) / 4
		if os.Getenv("YOLODISTILL_DNNL_VERBOSE") != "" {
			fmt.Fprintf(os.Stderr, "nn: oneDNN conv %d %+v: %s, work %d floats\n", k.kind, g, C.GoString(&p.c.impl[0]), p.work)
		}
	}
	dnnlCache.m[k] = p
	return p
}

// argSize returns the floats of argument i in the primitive's layout.
func (p *dnnlConv) argSize(i int) int {
	if p.c.args[i].reorder == nil {
		return -1
	}
	return (int(p.c.args[i].size) + 3) / 4
}

// sameLayout reports whether argument i has the same layout in p and q
// (both the plain one, or the same own one).
func (p *dnnlConv) sameLayout(q *dnnlConv, i int) bool {
	if (p.argSize(i) > 0) != (q.argSize(i) > 0) {
		return false
	}
	return p.argSize(i) < 0 || C.nn_conv_same_args(&p.c, C.int(i), &q.c, C.int(i)) != 0
}

// move reorders argument i between user (plain) and prim (the primitive's
// layout): an input from user into prim (pack), an output from prim into
// user.
func (p *dnnlConv) move(i int, user, prim []float32) {
	if s := C.nn_conv_move(&p.c, C.int(i), unsafe.Pointer(&user[0]), unsafe.Pointer(&prim[0])); s != 0 {
		panic(fmt.Sprintf("nn: oneDNN reorder failed (status %d)", s))
	}
}

// images returns the batch size the primitive was made for.
func (p *dnnlConv) images() int { return int(p.c.args[0].md.dims[0]) }

// argBlock returns the channels per block of the primitive's argument i:
// 16 in nChw16c, 8 in nChw8c, 0 in any other layout (or no primitive).
func (p *dnnlConv) argBlock(i int) int {
	if p == nil {
		return 0
	}
	return int(C.nn_conv_arg_block(&p.c, C.int(i)))
}

// mustTakeBlocked panics unless every argument whose bit is set in packed
// is in the blocked layout of bs channels per block (planBlocked checked it
// for the image runs of the worker count at Build; a primitive for another
// count could differ).
func (p *dnnlConv) mustTakeBlocked(packed, bs int) {
	for i := 0; p != nil && packed>>i != 0; i++ {
		if packed>>i&1 == 1 && p.argBlock(i) != bs {
			panic(fmt.Sprintf("nn: oneDNN convolution %s: argument %d is not in the nChw%dc layout the graph keeps it in", C.GoString(&p.c.impl[0]), i, bs))
		}
	}
}

// dnnlTakesBlocked returns the channels per block (16 or 8) of the blocked
// layout in which all the training primitives of convolution g take its
// input (in) or output (!in): the forward, the input gradient (when dx is
// needed; for in) over the image runs of the current worker count, and the
// weight gradient over the batch chunks; 0 when they do not all take one.
func dnnlTakesBlocked(g *convGeom, in, dx bool) int {
	if !useDNNL || !dnnlReady {
		return 0
	}
	bs := -1
	same := func(p *dnnlConv, i int) bool {
		b := p.argBlock(i)
		if bs < 0 {
			bs = b
		}
		return b != 0 && b == bs
	}
	fwd, bwd, wgt := 2, 0, 1 // the output's argument in each
	if in {
		fwd, bwd, wgt = 0, 2, 0
	}
	for _, k := range []struct {
		kind dnnlKind
		arg  int
	}{{dnnlFwdTrain, fwd}, {dnnlBwdData, bwd}} {
		if k.kind == dnnlBwdData && in && !dx {
			continue
		}
		p, q, calls := dnnlCallPrims(dnnlKey{kind: k.kind}, g, numWorkers())
		if !same(p, k.arg) || g.N%calls != 0 && !same(q, k.arg) {
			return 0
		}
	}
	for _, p := range dnnlChunkPrims(g) {
		if !same(p, wgt) {
			return 0
		}
	}
	return bs
}

// exec runs the primitive on the calling goroutine's thread.
func (p *dnnlConv) exec(args [4][]float32, packed int, work []float32) {
	var ptr [4]unsafe.Pointer
	for i, a := range args {
		if len(a) > 0 {
			ptr[i] = unsafe.Pointer(&a[0])
		}
	}
	var wk unsafe.Pointer
	if len(work) > 0 {
		wk = unsafe.Pointer(&work[0])
	}
	if s := C.nn_conv_exec(&p.c, ptr[0], ptr[1], ptr[2], ptr[3], C.int(packed), wk); s != 0 {
		panic(fmt.Sprintf("nn: oneDNN convolution failed (status %d)", s))
	}
}

// The convolution kernels through oneDNN. The training forward and
// input-gradient convolutions run one call over the whole batch on as many
// OpenMP threads as workers (dnnlTeam; oneDNN splits the work within images
// too, so more workers than images still help); the inference forward runs
// one single-threaded call per worker on a run of consecutive images (the
// batch split as parallelFor splits it; in an image group, one call). Both
// keep the bits for every GOMAXPROCS: oneDNN computes each image's result
// the same way whatever the number of images in the call and the number of
// threads (no reduction is split between threads in these kinds;
// TestDNNLBatchInvariance checks it on the running machine for every kind
// of layer of the two detectors, 1, 2, 3 and 8 workers). The weight gradient,
// whose reductions oneDNN would split, runs one single-threaded call per
// batch chunk (a fixed split, as our kernels'). Each returns false when
// oneDNN has no primitive for the shape (the caller then runs our kernels).

// dnnlForward computes y = conv(x, w) + bias, as convForward; blk says
// which of x and y are in a blocked layout (blkIn, blkOut) and its size.
func dnnlForward(g *convGeom, ws *workspace, x, w, bias, y []float32, blk int) bool {
	return dnnlConvForward(g, ws, x, w, bias, y, dnnlKey{kind: dnnlFwdTrain, blkSize: blk >> blkShift}, blk&blkBits)
}

// dnnlForwardAct computes y = act(conv(x, w) + bias) for inference; native
// (nativeIn, nativeOut) says which of x and y are in the primitive's own
// layout (dnnlLinkable).
func dnnlForwardAct(g *convGeom, ws *workspace, x, w, bias, y []float32, act Act, native int) bool {
	return dnnlConvForward(g, ws, x, w, bias, y, dnnlInferKey(act), native)
}

func dnnlInferKey(act Act) dnnlKey {
	return dnnlKey{kind: dnnlFwdInfer, bias: true, act: act, leakSlope: leakySlope}
}

func dnnlConvForward(g *convGeom, ws *workspace, x, w, bias, y []float32, key dnnlKey, native int) bool {
	key.bias = bias != nil
	in, out := g.C*g.H*g.W, g.Cout*g.OH*g.OW
	if native != 0 && key.kind == dnnlFwdInfer && ws.workers() != 1 {
		panic("nn: oneDNN layouts passed between convolutions outside an image group")
	}
	return dnnlImageRuns(g, ws, key, native, w, func(p *dnnlConv, n0, n1 int, wArg []float32, packed int, work []float32) {
		p.exec([4][]float32{x[n0*in : n1*in], wArg, y[n0*out : n1*out], bias}, packed|native, work)
	})
}

// dnnlPrimFor returns key's primitive for convolution g over n images.
func dnnlPrimFor(key dnnlKey, g *convGeom, n int) *dnnlConv {
	key.g = *g
	key.g.N, key.g.splitN, key.blkSize = n, 0, 0
	return dnnlPrim(key)
}

// dnnlLinkable reports whether the fused ConvBNAct prod (its output) can
// pass its output on in its primitive's own layout to the fused ConvBNActs
// cons, all of one image group (one inference primitive call over the
// group's images): every one has a primitive, the output's layout is its
// own (not the plain one), each consumer takes that very layout as its
// input, and it holds exactly the plain tensor's floats (no padding), so
// that it fits the tensor's buffer.
func dnnlLinkable(prod *Tensor, cons []*Tensor) bool {
	if !useDNNL {
		return false
	}
	// A fused ConvBNAct's output reads its convolution (inputs[0]).
	prim := func(t *Tensor) (*dnnlConv, *convGeom) {
		g := &t.inputs[0].geom
		return dnnlPrimFor(dnnlInferKey(t.fusedAct), g, g.N), g
	}
	p, pg := prim(prod)
	if p == nil || p.argSize(2) != pg.N*pg.Cout*pg.OH*pg.OW {
		return false
	}
	for _, t := range cons {
		q, g := prim(t)
		if q == nil || q.argSize(0) != g.N*g.C*g.H*g.W || C.nn_conv_same_args(&p.c, 2, &q.c, 0) == 0 {
			return false
		}
	}
	return true
}

// dnnlBackwardData computes dx from dy, as convBackwardData. With sh, dy is
// reordered into oneDNN's layout in the arena's shared buffer (or read from
// it, when the weight gradient filled it) where the weight gradient's
// primitives take the same layout per image.
func dnnlBackwardData(g *convGeom, ws *workspace, sh *dyShare, w, dy, dx []float32, blk int) bool {
	in, out := g.C*g.H*g.W, g.Cout*g.OH*g.OW
	per := 0
	if blk&blkOut == 0 {
		per = dnnlDyPerImage(g, ws, sh)
	}
	// dy (argument 0) and dx (argument 2) blocked: blkOut and blkIn.
	native := blk&blkOut>>2 | blk&blkIn<<2
	d := dyArgs{dy: dy, out: out, per: per}
	d.blk, d.have = sh.dnnlBuffer(g.N * per)
	ok := dnnlImageRuns(g, ws, dnnlKey{kind: dnnlBwdData, blkSize: blk >> blkShift}, native, w, func(p *dnnlConv, n0, n1 int, wArg []float32, packed int, work []float32) {
		dyArg, dyPacked := d.images(p, 0, n0, n1)
		p.exec([4][]float32{dyArg, wArg, dx[n0*in : n1*in]}, packed|native|dyPacked, work)
	})
	if ok && per > 0 {
		sh.filled()
	}
	return ok
}

// dnnlBuffer is get for n > 0 floats (counting reuses in dnnlDyReused);
// nothing for n == 0.
func (sh *dyShare) dnnlBuffer(n int) ([]float32, bool) {
	if n == 0 {
		return nil, false
	}
	buf, have := sh.get(n)
	if have {
		dnnlDyReused.Add(1)
	}
	return buf, have
}

// dyArgs hands a gradient primitive its images of dy: plain (per == 0), or
// from the shared buffer blk in oneDNN's layout (per floats per image),
// reordered into it first unless have says it holds them already.
type dyArgs struct {
	dy, blk  []float32
	out, per int
	have     bool
}

// images returns dy's images n0..n1-1 for argument arg of p and the packed
// bit to pass for it.
func (d *dyArgs) images(p *dnnlConv, arg, n0, n1 int) ([]float32, int) {
	if d.per == 0 {
		return d.dy[n0*d.out : n1*d.out], 0
	}
	b := d.blk[n0*d.per : n1*d.per]
	if !d.have {
		p.move(arg, d.dy[n0*d.out:n1*d.out], b)
	}
	return b, 1 << arg
}

// dnnlDyPerImage returns the floats per image of dy in the layout that the
// input-gradient primitives of g's image runs (ws.workers() runs) and the
// weight-gradient primitives of its batch chunks all take, or 0 when sh is
// nil or they do not take one such layout.
func dnnlDyPerImage(g *convGeom, ws *workspace, sh *dyShare) int {
	if sh == nil || !useDNNL || !dnnlDyShared {
		return 0
	}
	if sh.perWorkers == ws.workers() { // computed by the conv's other gradient op
		return sh.per
	}
	// diff_dst: argument 0 of the input gradient, 1 of the weight gradient
	p, q, calls := dnnlCallPrims(dnnlKey{kind: dnnlBwdData}, g, ws.workers())
	same := func(r *dnnlConv, arg int) bool {
		return p != nil && r != nil && C.nn_conv_same_image_args(&p.c, 0, &r.c, C.int(arg)) != 0
	}
	ok := same(p, 0) && (g.N%calls == 0 || same(q, 0))
	for _, r := range dnnlChunkPrims(g) {
		ok = ok && same(r, 1)
	}
	sh.per, sh.perWorkers = 0, ws.workers()
	if ok {
		sh.per = p.argSize(0) / p.images()
	}
	return sh.per
}

// dnnlImageRuns splits the batch into one run of consecutive images per
// worker (ws.workers(): one in an inference image group) and calls run for
// each with its primitive (key with the run's image count), the weights
// (argument 1) packed once into the primitive's layout where it has its
// own, and the worker's work area.
func dnnlImageRuns(g *convGeom, ws *workspace, key dnnlKey, native int, w []float32,
	run func(p *dnnlConv, n0, n1 int, wArg []float32, packed int, work []float32)) bool {
	if !useDNNL {
		return false
	}
	p, q, calls := dnnlCallPrims(key, g, ws.workers())
	short := g.N / calls // calls take short images, or short+1 (q)
	if p == nil || g.N%calls != 0 && q == nil {
		return false
	}
	if key.kind != dnnlFwdInfer {
		p.mustTakeBlocked(native, key.blkSize)
		q.mustTakeBlocked(native, key.blkSize)
	}
	wArg, packed := w, 0
	if sz := p.argSize(1); sz > 0 {
		wArg = ws.packBuf(sz)
		p.move(1, w, wArg)
		packed = 1 << 1
	}
	wArgQ, packedQ := wArg, packed
	if q != nil && !p.sameLayout(q, 1) {
		// Not seen: the weights' layout depends on the image count. The
		// longer runs then reorder the plain weights themselves.
		wArgQ, packedQ = w, 0
	}
	work := p.work
	if q != nil {
		work = max(work, q.work)
	}
	ws.reserve(calls, work)
	parallelForW(calls, g.N, func(wk, lo, hi int) {
		if hi-lo == short {
			run(p, lo, hi, wArg, packed, ws.get(wk, p.work))
		} else {
			run(q, lo, hi, wArgQ, packedQ, ws.get(wk, q.work))
		}
	})
	return true
}

// dnnlTeam makes the training forward and input-gradient convolutions one
// oneDNN call over the whole batch on as many OpenMP threads as workers,
// instead of one single-threaded call per worker's run of images (tests
// and YOLODISTILL_DNNL_RUNS=1 turn it off).
var dnnlTeam = os.Getenv("YOLODISTILL_DNNL_RUNS") == ""

// dnnlTeamPrim returns the primitive of one call over g's whole batch on
// workers OpenMP threads, for the training forward and input gradient with
// more than one worker (dnnlTeam); nil otherwise, or when oneDNN has none.
func dnnlTeamPrim(key dnnlKey, g *convGeom, workers int) *dnnlConv {
	if !dnnlTeam || workers < 2 || key.kind != dnnlFwdTrain && key.kind != dnnlBwdData {
		return nil
	}
	key.threads = workers
	return dnnlPrimFor(key, g, g.N)
}

// dnnlCallPrims returns how the forward or input gradient (key) of g runs
// with workers workers: calls primitive calls (one per worker's run of
// images, or one team call over the whole batch), p over N/calls images, q
// over one more (nil when they divide evenly); p or q nil too when oneDNN
// has no primitive.
func dnnlCallPrims(key dnnlKey, g *convGeom, workers int) (p, q *dnnlConv, calls int) {
	calls = min(workers, g.N)
	if p := dnnlTeamPrim(key, g, calls); p != nil {
		return p, nil, 1
	}
	p = dnnlPrimFor(key, g, g.N/calls)
	if g.N%calls != 0 {
		q = dnnlPrimFor(key, g, g.N/calls+1)
	}
	return p, q, calls
}

// dnnlChunkPrims returns the weight-gradient primitives of g's batch chunks
// (an entry nil when oneDNN has none).
func dnnlChunkPrims(g *convGeom) []*dnnlConv {
	chunks := min(g.N, wgradChunks)
	prims := make([]*dnnlConv, chunks)
	for c := range prims {
		prims[c] = dnnlPrimFor(dnnlKey{kind: dnnlBwdWeights}, g, (c+1)*g.N/chunks-c*g.N/chunks)
	}
	return prims
}

// dnnlBackwardWeight computes dw from x and dy, as convBackwardWeight: one
// primitive call per batch chunk (into dw or a partial), partials added in
// chunk order. When the primitives write the weight gradient in their own
// layout (the same for every chunk), the partials are added in that layout
// and the sum reordered into dw once: the same additions of the same values
// (a reorder only moves floats), one reorder instead of one per chunk.
func dnnlBackwardWeight(g *convGeom, ws, acc *workspace, sh *dyShare, x, dy, dw []float32, blk int) bool {
	if !useDNNL {
		return false
	}
	per := 0
	if blk&blkOut == 0 {
		per = dnnlDyPerImage(g, ws, sh)
	}
	// x (argument 0) and dy (argument 1) blocked: blkIn and blkOut.
	native := blk&blkIn | blk&blkOut>>1
	prims := dnnlChunkPrims(g)
	chunks := len(prims)
	work := 0
	for _, p := range prims {
		if p == nil {
			return false
		}
		work = max(work, p.work)
		p.mustTakeBlocked(native, blk>>blkShift)
	}
	own := prims[0].argSize(2) // floats of dw in the primitives' layout; -1: plain
	for _, p := range prims[1:] {
		if !p.sameLayout(prims[0], 2) {
			own = -1
		}
	}
	if chunks == 1 || !dnnlWgradOwnSum {
		own = -1
	}
	ws.reserve(min(numWorkers(), chunks), work)
	if own > 0 {
		acc.reserve(chunks, own)
	} else {
		acc.reserve(chunks-1, len(dw))
	}
	in, out := g.C*g.H*g.W, g.Cout*g.OH*g.OW
	d := dyArgs{dy: dy, out: out, per: per}
	d.blk, d.have = sh.dnnlBuffer(g.N * per)
	parallelFor(chunks, func(wk, lo, hi int) {
		for c := lo; c < hi; c++ {
			dst, packed := dw, native
			switch {
			case own > 0:
				dst, packed = acc.get(c, own), native|1<<2
			case c > 0:
				dst = acc.get(c-1, len(dw))
			}
			n0, n1 := c*g.N/chunks, (c+1)*g.N/chunks
			p := prims[c]
			dyArg, dyPacked := d.images(p, 1, n0, n1)
			p.exec([4][]float32{x[n0*in : n1*in], dyArg, dst}, packed|dyPacked, ws.get(wk, p.work))
		}
	})
	if per > 0 {
		sh.filled()
	}
	if own > 0 {
		sum := acc.get(0, own)
		addParts(sum, acc, 1, chunks-1)
		prims[0].move(2, dw, sum)
		return true
	}
	addPartials(dw, acc, chunks)
	return true
}

// dnnlWgradOwnSum adds the weight gradient's chunk partials in the
// primitives' own layout (tests turn it off to compare with the sum of the
// partials reordered one by one).
var dnnlWgradOwnSum = true

// dnnlDyShared lets a convolution's gradient ops share dy's reorder
// (dyShare; tests turn it off to compare); dnnlDyReused counts the ops that
// read it back.
var (
	dnnlDyShared = true
	dnnlDyReused atomic.Int64
)

// useDNNL routes convolutions through oneDNN (tests turn it off to compare
// with our kernels).
var useDNNL = true
