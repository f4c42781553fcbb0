/* Score-accumulation and top-k kernels for the inverted index.
 *
 * Term-at-a-time over the query's posting lists into a per-thread accumulator, tracking touched documents so
 * that clearing and top-k selection cost O(touched), not O(collection). The GIL is released, so batch search
 * scales over threads. Arrays arrive through the buffer protocol (no numpy headers needed to build). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MODE_SATURATING = 0, MODE_BM25L = 1, MODE_DIRICHLET = 2, MODE_IMPACT = 3 };

typedef struct { float score; uint32_t doc; } Hit;

/* a ranks before b: higher score, or equal score and earlier document (earlier documents win ties). */
static inline int better(Hit a, Hit b) { return a.score > b.score || (a.score == b.score && a.doc < b.doc); }

static int compare_hits(const void *x, const void *y) {
    const Hit a = *(const Hit *)x, b = *(const Hit *)y;
    return better(a, b) ? -1 : (better(b, a) ? 1 : 0);
}

/* Quickselect: afterwards h[0..k-1] hold the k best of h[0..n-1], in no particular order. */
static void select_best(Hit *h, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = n - 1, target = k - 1;
    while (hi > lo) {
        const Hit pivot = h[lo + (hi - lo) / 2];
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (better(h[i], pivot)) i++;
            while (better(pivot, h[j])) j--;
            if (i <= j) { Hit t = h[i]; h[i] = h[j]; h[j] = t; i++; j--; }
        }
        if (target <= j) hi = j;
        else if (target >= i) lo = i;
        else return;
    }
}

static Hit worst_of(const Hit *h, Py_ssize_t n) {
    Hit w = h[0];
    for (Py_ssize_t i = 1; i < n; i++) if (better(w, h[i])) w = h[i];
    return w;
}

static int get_buf(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *name, int writable) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected item size %zd, got %zd", name, itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* One posting list into the accumulator, specialised per scoring mode and tf width so the inner loop has no
 * branches but the touched-document check. Returns the new touched count, or -1 on a corrupt document number. */
typedef Py_ssize_t (*Accumulate)(const uint32_t *, const void *, int64_t, int64_t, float, float, float, float,
                                 const float *, float *, uint8_t *, uint32_t *, Py_ssize_t, uint32_t);

#define DEFINE_ACCUMULATE(NAME, TF_T, SCORE)                                                                    \
    static Py_ssize_t NAME(const uint32_t *pd, const void *tfv, int64_t first, int64_t last, float wf, float cf,  \
                           float k1, float delta, const float *nm, float *a, uint8_t *mk, uint32_t *tc,          \
                           Py_ssize_t n_touched, uint32_t n_docs) {                                             \
        const TF_T *tfs = (const TF_T *)tfv;                                                                    \
        (void)k1; (void)delta; (void)cf;                                                                        \
        for (int64_t p = first; p < last; p++) {                                                                \
            const uint32_t d = pd[p];                                                                           \
            if (d >= n_docs) return -1;                                                                         \
            const float tf = (float)tfs[p];                                                                     \
            const float nd = nm[d];                                                                             \
            float s;                                                                                            \
            SCORE;                                                                                              \
            if (!mk[d]) { mk[d] = 1; tc[n_touched++] = d; }                                                     \
            a[d] += s;                                                                                          \
        }                                                                                                       \
        return n_touched;                                                                                       \
    }

/* The same without the mark array, for scorers whose every posting adds a score > 0 (the saturating BM25s and BM25L
 * with positive weights): a[d] == 0 then means untouched, and one random access per posting is saved. */
#define DEFINE_ACCUMULATE_POSITIVE(NAME, TF_T, SCORE)                                                           \
    static Py_ssize_t NAME(const uint32_t *pd, const void *tfv, int64_t first, int64_t last, float wf, float cf,  \
                           float k1, float delta, const float *nm, float *a, uint8_t *mk, uint32_t *tc,          \
                           Py_ssize_t n_touched, uint32_t n_docs) {                                             \
        const TF_T *tfs = (const TF_T *)tfv;                                                                    \
        (void)k1; (void)delta; (void)cf; (void)mk;                                                              \
        for (int64_t p = first; p < last; p++) {                                                                \
            const uint32_t d = pd[p];                                                                           \
            if (d >= n_docs) return -1;                                                                         \
            const float tf = (float)tfs[p];                                                                     \
            const float nd = nm[d];                                                                             \
            float s;                                                                                            \
            SCORE;                                                                                              \
            if (a[d] == 0.0f) tc[n_touched++] = d;                                                              \
            a[d] += s;                                                                                          \
        }                                                                                                       \
        return n_touched;                                                                                       \
    }

#define SCORE_SAT s = wf * (tf / (tf + nd)) + cf
#define SCORE_BM25L { const float x = tf / nd + delta; s = wf * x / (k1 + x); }
#define SCORE_DIR { const float l = logf(1.0f + tf * cf) + nd; s = l > 0.0f ? wf * l : 0.0f; }
DEFINE_ACCUMULATE(acc_sat_16, uint16_t, SCORE_SAT)
DEFINE_ACCUMULATE(acc_sat_32, uint32_t, SCORE_SAT)
DEFINE_ACCUMULATE(acc_bm25l_16, uint16_t, SCORE_BM25L)
DEFINE_ACCUMULATE(acc_bm25l_32, uint32_t, SCORE_BM25L)
DEFINE_ACCUMULATE_POSITIVE(acc_sat_16_pos, uint16_t, SCORE_SAT)
DEFINE_ACCUMULATE_POSITIVE(acc_sat_32_pos, uint32_t, SCORE_SAT)
DEFINE_ACCUMULATE_POSITIVE(acc_bm25l_16_pos, uint16_t, SCORE_BM25L)
DEFINE_ACCUMULATE_POSITIVE(acc_bm25l_32_pos, uint32_t, SCORE_BM25L)
DEFINE_ACCUMULATE(acc_dir_16, uint16_t, SCORE_DIR)
DEFINE_ACCUMULATE(acc_dir_32, uint32_t, SCORE_DIR)
/* Learned-sparse impacts: the stored "tf" is a quantized term weight, the score a plain weighted sum. */
#define SCORE_IMPACT { (void)nd; s = wf * tf; }
DEFINE_ACCUMULATE(acc_impact_16, uint16_t, SCORE_IMPACT)
DEFINE_ACCUMULATE(acc_impact_32, uint32_t, SCORE_IMPACT)

/* Acquire n buffers; index 1 is the tfs array (uint16 or uint32), indexes from first_out on are written, and those
 * whose bit is set in `optional` may be None. Returns how many were acquired (n on success; the caller releases
 * that many with release_bufs). */
static int get_bufs(PyObject **objs, Py_buffer *b, const Py_ssize_t *sizes, const char **names, int n, int first_out,
                    uint32_t optional) {
    int got = 0;
    for (; got < n; got++) {
        if ((optional >> got & 1u) && objs[got] == Py_None) { memset(&b[got], 0, sizeof b[got]); continue; }
        if (got == 1) {
            if (PyObject_GetBuffer(objs[1], &b[1], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) break;
            if (b[1].itemsize != 2 && b[1].itemsize != 4) {
                PyErr_SetString(PyExc_TypeError, "tfs must be uint16 or uint32");
                PyBuffer_Release(&b[1]);
                break;
            }
            continue;
        }
        if (get_buf(objs[got], &b[got], sizes[got], names[got], got >= first_out) < 0) break;
    }
    return got;
}

static void release_bufs(PyObject **objs, Py_buffer *b, int got, uint32_t optional) {
    for (int i = 0; i < got; i++) if (!((optional >> i & 1u) && objs[i] == Py_None)) PyBuffer_Release(&b[i]);
}

/* A segment's postings and the scorer's per-document norms, as every top-k routine below reads them. */
typedef struct {
    const uint32_t *pd;   /* document numbers, ascending within a term */
    const void *tfv;      /* term frequencies (or quantized impacts), uint16 or uint32 */
    int wide;             /* tfv is uint32 */
    const int64_t *off;   /* postings of term t: [off[t], off[t + 1]) */
    const float *nm;      /* per-document norm of the scoring mode */
    const uint8_t *lv;    /* documents allowed (live and passing the filter), NULL for all */
    Py_ssize_t n_docs;
    int mode;
    float k1, delta;
} Segment;

/* Documents per pass of the exhaustive top k: the accumulator, marks and norms of one window (64K documents:
 * ~576 KB) stay in a core's L2 cache. One pass over a whole large segment would make every posting a random access
 * into arrays of the segment's size (at 3M documents 24 MB of accumulator and norms: past what the cache keeps; in
 * one run a query cost 9.5x its 1M time for 3x the postings). */
#define EXHAUSTIVE_WINDOW 65536

/* First posting in [lo, hi) of an ascending run of document numbers with a document >= d. */
static int64_t lower_bound_doc(const uint32_t *pd, int64_t lo, int64_t hi, uint32_t d) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (pd[mid] < d) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* The exhaustive top k of one query: every posting into the accumulator a (with touched-document tracking in mk/tc,
 * all left cleared), then the best k of the touched documents, a window of EXHAUSTIVE_WINDOW documents at a time.
 * Each document's sum adds its terms in query order as a single pass would, so scores are bit-identical, and the
 * selection keeps the best k under one total order (score, then document), so the order of windows changes
 * nothing. Returns the hits written to od/os, -1 for a document number out of range (corrupt index), -2 when out
 * of memory. */
static Py_ssize_t exhaustive_topk(const Segment *sg, const int64_t *tid, const double *wt, const double *ct,
                                  Py_ssize_t n_terms, Py_ssize_t k, float *a, uint8_t *mk, uint32_t *tc, uint32_t *od,
                                  float *os) {
    Accumulate fn;
    const int tf16 = !sg->wide;
    int positive = sg->mode == MODE_SATURATING || sg->mode == MODE_BM25L;
    for (Py_ssize_t t = 0; t < n_terms && positive; t++) positive = wt[t] > 0.0 && ct[t] >= 0.0;
    if (positive && sg->mode == MODE_SATURATING) fn = tf16 ? acc_sat_16_pos : acc_sat_32_pos;
    else if (positive) fn = tf16 ? acc_bm25l_16_pos : acc_bm25l_32_pos;
    else if (sg->mode == MODE_SATURATING) fn = tf16 ? acc_sat_16 : acc_sat_32;
    else if (sg->mode == MODE_BM25L) fn = tf16 ? acc_bm25l_16 : acc_bm25l_32;
    else if (sg->mode == MODE_IMPACT) fn = tf16 ? acc_impact_16 : acc_impact_32;
    else fn = tf16 ? acc_dir_16 : acc_dir_32;
    if (k <= 0) return 0;
    /* Top k: candidates better than the current k-th best go to a buffer of 2k; when it fills, a quickselect keeps
     * the k best and raises the threshold. Most documents are rejected by one well-predicted comparison. */
    const Py_ssize_t cap = k < 32 ? 64 : 2 * k;
    Hit *buf = (Hit *)PyMem_RawMalloc(sizeof(Hit) * (size_t)cap);
    int64_t *cur = (int64_t *)PyMem_RawMalloc(sizeof(int64_t) * (size_t)(n_terms > 0 ? n_terms : 1));
    if (!buf || !cur) { PyMem_RawFree(buf); PyMem_RawFree(cur); return -2; }
    for (Py_ssize_t t = 0; t < n_terms; t++) cur[t] = sg->off[tid[t]];
    Py_ssize_t n = 0;
    int have_threshold = 0, corrupt = 0;
    Hit threshold = {0.0f, 0};
    const int windowed = sg->n_docs > EXHAUSTIVE_WINDOW;
    for (Py_ssize_t w0 = 0; w0 < sg->n_docs && !corrupt; w0 += EXHAUSTIVE_WINDOW) {
        const uint32_t w1 = (uint32_t)(w0 + EXHAUSTIVE_WINDOW < sg->n_docs ? w0 + EXHAUSTIVE_WINDOW : sg->n_docs);
        Py_ssize_t n_touched = 0;
        for (Py_ssize_t t = 0; t < n_terms; t++) {
            const int64_t last = sg->off[tid[t] + 1];
            const int64_t stop = windowed ? lower_bound_doc(sg->pd, cur[t], last, w1) : last;
            n_touched = fn(sg->pd, sg->tfv, cur[t], stop, (float)wt[t], (float)ct[t], sg->k1, sg->delta, sg->nm, a,
                           mk, tc, n_touched, (uint32_t)sg->n_docs);
            if (n_touched < 0) { corrupt = 1; n_touched = 0; break; }
            cur[t] = stop;
        }
        for (Py_ssize_t i = 0; i < n_touched; i++) {
            const uint32_t d = tc[i];
            if (sg->lv && !sg->lv[d]) continue;
            const Hit h = {a[d], d};
            if (have_threshold && !better(h, threshold)) continue;
            buf[n++] = h;
            if (n == cap) {
                select_best(buf, n, k);
                n = k;
                threshold = worst_of(buf, k);
                have_threshold = 1;
            }
        }
        if (positive) for (Py_ssize_t i = 0; i < n_touched; i++) a[tc[i]] = 0.0f;
        else for (Py_ssize_t i = 0; i < n_touched; i++) { a[tc[i]] = 0.0f; mk[tc[i]] = 0; }
    }
    PyMem_RawFree(cur);
    if (corrupt) { PyMem_RawFree(buf); return -1; }
    if (n > k) { select_best(buf, n, k); n = k; }
    qsort(buf, (size_t)n, sizeof(Hit), compare_hits);
    for (Py_ssize_t m = 0; m < n; m++) { od[m] = buf[m].doc; os[m] = buf[m].score; }
    PyMem_RawFree(buf);
    return n;
}

/* Checks a query's term ids against the segment: each in the vocabulary, its posting range inside the postings. */
static int terms_in_range(const int64_t *off, Py_ssize_t n_vocab, Py_ssize_t n_post, const int64_t *tid,
                          Py_ssize_t n_terms) {
    for (Py_ssize_t t = 0; t < n_terms; t++)
        if (tid[t] < 0 || tid[t] >= n_vocab || off[tid[t]] < 0 || off[tid[t] + 1] < off[tid[t]] ||
            off[tid[t] + 1] > n_post)
            return 0;
    return 1;
}

/* search_segment(docs u32, tfs u16|u32, offsets i64[V+1], term_ids i64, weights f64, consts f64, norm f32, live u8|None,
 *                mode, k1, delta, k, acc f32[n], mark u8[n], touched u32[n], out_docs u32[k], out_scores f32[k])
 *  -> number of hits written */
static PyObject *search_segment(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[16];
    int mode;
    double k1, delta;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiddnOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &mode,
                          &k1, &delta, &k, &o[8], &o[9], &o[10], &o[11], &o[12]))
        return NULL;
    Py_buffer b[13];
    const Py_ssize_t sizes[13] = {4, 0, 8, 8, 8, 8, 4, 1, 4, 1, 4, 4, 4};
    const char *names[13] = {"docs", "tfs", "offsets", "term_ids", "weights", "consts", "norm", "live", "acc", "mark",
                             "touched", "out_docs", "out_scores"};
    PyObject *result = NULL;
    const int got = get_bufs(o, b, sizes, names, 13, 8, 1u << 7);
    if (got < 13) goto release;
    const Py_ssize_t n_docs = b[6].len / 4, n_terms = b[3].len / 8, n_post = b[0].len / 4, n_vocab = b[2].len / 8 - 1;
    const int have_live = o[7] != Py_None;
    if (b[8].len / 4 < n_docs || b[9].len < n_docs || b[10].len / 4 < n_docs || b[11].len / 4 < k ||
        b[12].len / 4 < k || b[4].len / 8 != n_terms || b[5].len / 8 != n_terms || (have_live && b[7].len < n_docs) ||
        b[1].len / b[1].itemsize != n_post) {
        PyErr_SetString(PyExc_ValueError, "search_segment: inconsistent array sizes");
        goto release;
    }
    if (!terms_in_range(b[2].buf, n_vocab, n_post, b[3].buf, n_terms)) {
        PyErr_SetString(PyExc_ValueError, "search_segment: term id or posting range out of bounds");
        goto release;
    }
    const Segment sg = {b[0].buf, b[1].buf, b[1].itemsize == 4, b[2].buf, b[6].buf, have_live ? b[7].buf : NULL,
                        n_docs, mode, (float)k1, (float)delta};
    Py_ssize_t n_hits;
    Py_BEGIN_ALLOW_THREADS
    n_hits = exhaustive_topk(&sg, b[3].buf, b[4].buf, b[5].buf, n_terms, k, b[8].buf, b[9].buf, b[10].buf, b[11].buf,
                             b[12].buf);
    Py_END_ALLOW_THREADS
    if (n_hits == -1) PyErr_SetString(PyExc_ValueError, "search_segment: document number out of range (corrupt index?)");
    else if (n_hits < 0) PyErr_NoMemory();
    else result = PyLong_FromSsize_t(n_hits);
release:
    release_bufs(o, b, got, 1u << 7);
    return result;
}

/* ---- Safe dynamic pruning: block-max MaxScore, a window of documents at a time ----------------------------------
 * Exact top k: the same documents and bit-identical scores as search_segment. Bounds only decide which documents
 * are skipped; the score of every document that may enter the top k is summed in float, term by term in query
 * order, exactly as the accumulator does.
 *
 * Bounds. A term's "unit" is its largest per-posting score with weight 1 and constant 0 (tf/(tf+norm) for the
 * saturating BM25s, x/(k1+x) with x = tf/norm + delta for BM25L, tf for impacts), over its whole list (units) and
 * over each block of BLOCK postings (blocks; term t's blocks start at block_starts[t]). They depend on the norms
 * (k1, b, average length), so term_bounds computes them at query time, one pass over a term's postings the first
 * time a query needs it; the caller caches them per scorer.
 *
 * Search (MaxScore, Turtle & Flood 1995, with Lucene-style windows and block maxima, as in Ding & Suel's block-max
 * indexes). Terms are sorted by bound. Once k documents are held, the k-th score theta is a bar: a document whose
 * bound cannot pass it is skipped. Globally, the lists whose bounds together cannot pass theta are non-essential:
 * a window never starts at them. Per window of WINDOW documents, every list's bound within the window comes from
 * its block maxima; the lists whose window bounds together stay under theta are only probed (galloping seek) for
 * the candidates of the others, highest bound first, while the candidate can still pass; a window whose bounds all
 * together stay under theta is skipped whole. Documents arrive in increasing order, so a later document that ties
 * theta loses (ties go to the lower document): "bound <= theta" is a safe skip. Bounds carry a relative slack for
 * float rounding (float scores summed in another order vs double bounds). Weights and constants must be >= 0. */
#define BLOCK 64
#define WINDOW 4096u
/* per-term window scores are kept apart (n_terms x WINDOW floats): longer queries take the exhaustive path */
#define MAX_PRUNED_TERMS 16

typedef struct { int64_t pos, end, lo, hi, off; int64_t first_block; float wf, cf; double ub, wub; Py_ssize_t qi; } Cursor;

static inline float unit_score(int mode, float tf, float nd, float k1, float delta) {
    if (mode == MODE_SATURATING) return tf / (tf + nd);
    if (mode == MODE_BM25L) { const float x = tf / nd + delta; return x / (k1 + x); }
    return tf;  /* MODE_IMPACT */
}

/* The float score of one posting, computed exactly as the accumulating kernels compute it. */
static inline float posting_score(int mode, float tf, float nd, float wf, float cf, float k1, float delta) {
    float s;
    if (mode == MODE_SATURATING) s = wf * (tf / (tf + nd)) + cf;
    else if (mode == MODE_BM25L) { const float x = tf / nd + delta; s = wf * x / (k1 + x); }
    else s = wf * tf;
    return s;
}

static inline float tf_at(const void *tfv, int wide, int64_t p) {
    return wide ? (float)((const uint32_t *)tfv)[p] : (float)((const uint16_t *)tfv)[p];
}

/* The first position in [pos, end) whose document is >= d: galloping from pos, then binary search. */
static inline int64_t seek(const uint32_t *pd, int64_t pos, int64_t end, uint64_t d) {
    if (pos >= end || pd[pos] >= d) return pos;
    int64_t lo = pos, hi, step = 1;
    for (;;) {
        hi = lo + step;
        if (hi >= end) { hi = end; break; }
        if (pd[hi] >= d) break;
        lo = hi;
        step <<= 1;
    }
    lo++;
    while (lo < hi) { const int64_t mid = lo + (hi - lo) / 2; if (pd[mid] < d) lo = mid + 1; else hi = mid; }
    return lo;
}

/* A heap of the k best hits so far with the worst at the root. */
static inline void heap_down(Hit *h, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && better(h[m], h[l])) m = l;
        if (r < n && better(h[m], h[r])) m = r;
        if (m == i) return;
        const Hit t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static inline void heap_up(Hit *h, Py_ssize_t i) {
    while (i > 0) {
        const Py_ssize_t parent = (i - 1) / 2;
        if (!better(h[parent], h[i])) return;
        const Hit t = h[i]; h[i] = h[parent]; h[parent] = t;
        i = parent;
    }
}

static int compare_cursors(const void *x, const void *y) {
    const Cursor *a = x, *b = y;
    if (a->ub != b->ub) return a->ub < b->ub ? -1 : 1;
    return a->qi < b->qi ? -1 : (a->qi > b->qi);
}

/* term_bounds(docs, tfs, offsets, norms, mode, k1, delta, term_ids, block_starts i64[V+1], units f32[V],
 *             blocks f32[block_starts[V]]): fills units[t] and t's blocks for each t in term_ids. */
static PyObject *term_bounds(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[9];
    int mode;
    double k1, delta;
    if (!PyArg_ParseTuple(args, "OOOOiddOOOO", &o[0], &o[1], &o[2], &o[3], &mode, &k1, &delta, &o[4], &o[5], &o[6],
                          &o[7]))
        return NULL;
    if (mode != MODE_SATURATING && mode != MODE_BM25L && mode != MODE_IMPACT) {
        PyErr_SetString(PyExc_ValueError, "term_bounds: no bound for this scoring mode");
        return NULL;
    }
    Py_buffer b[8];
    const Py_ssize_t sizes[8] = {4, 0, 8, 4, 8, 8, 4, 4};
    const char *names[8] = {"docs", "tfs", "offsets", "norm", "term_ids", "block_starts", "units", "blocks"};
    PyObject *result = NULL;
    const int got = get_bufs(o, b, sizes, names, 8, 6, 0);
    if (got < 8) goto release;
    const Py_ssize_t n_vocab = b[2].len / 8 - 1, n_post = b[0].len / 4, n_docs = b[3].len / 4, n_terms = b[4].len / 8;
    const int64_t *off = b[2].buf, *tid = b[4].buf, *bs = b[5].buf;
    int bad = b[1].len / b[1].itemsize != n_post || b[6].len / 4 != n_vocab || b[5].len / 8 != n_vocab + 1 ||
              bs[n_vocab] != b[7].len / 4;
    for (Py_ssize_t t = 0; !bad && t < n_terms; t++)
        bad = tid[t] < 0 || tid[t] >= n_vocab || off[tid[t]] < 0 || off[tid[t] + 1] < off[tid[t]] ||
              off[tid[t] + 1] > n_post || bs[tid[t] + 1] - bs[tid[t]] != (off[tid[t] + 1] - off[tid[t]] + BLOCK - 1) / BLOCK;
    if (bad) { PyErr_SetString(PyExc_ValueError, "term_bounds: inconsistent arrays or term id out of range"); goto release; }
    int corrupt = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint32_t *pd = b[0].buf;
    const float *nm = b[3].buf;
    float *units = b[6].buf, *blocks = b[7].buf;
    const int wide = b[1].itemsize == 4;
    for (Py_ssize_t t = 0; t < n_terms && !corrupt; t++) {
        const int64_t first = off[tid[t]], last = off[tid[t] + 1];
        float m = 0.0f;
        for (int64_t start = first; start < last && !corrupt; start += BLOCK) {
            const int64_t stop = start + BLOCK < last ? start + BLOCK : last;
            float bm = 0.0f;
            for (int64_t p = start; p < stop; p++) {
                const uint32_t d = pd[p];
                if (d >= (uint32_t)n_docs) { corrupt = 1; break; }
                const float u = unit_score(mode, tf_at(b[1].buf, wide, p), mode == MODE_IMPACT ? 0.0f : nm[d],
                                           (float)k1, (float)delta);
                if (u > bm) bm = u;
            }
            blocks[bs[tid[t]] + (start - first) / BLOCK] = bm;
            if (bm > m) m = bm;
        }
        units[tid[t]] = m;
    }
    Py_END_ALLOW_THREADS
    if (corrupt) PyErr_SetString(PyExc_ValueError, "term_bounds: document number out of range (corrupt index?)");
    else result = Py_NewRef(Py_None);
release:
    release_bufs(o, b, got, 0);
    return result;
}

/* Checks a query's bounds inputs: block ranges that match the posting ranges, weights and constants >= 0. */
static int bounds_usable(const int64_t *off, const int64_t *bs, const int64_t *tid, const double *wt, const double *ct,
                         Py_ssize_t n_terms) {
    for (Py_ssize_t t = 0; t < n_terms; t++)
        if (bs[tid[t] + 1] - bs[tid[t]] != (off[tid[t] + 1] - off[tid[t]] + BLOCK - 1) / BLOCK || !(wt[t] >= 0.0) ||
            !(ct[t] >= 0.0))
            return 0;
    return 1;
}

/* The MaxScore top k of one query (1..MAX_PRUNED_TERMS terms, weights and constants >= 0, bounds computed for every
 * term). contrib: MAX_PRUNED_TERMS x WINDOW floats, zero on entry and on return. Returns the hits written to od/os,
 * -1 for a document number out of range (corrupt index), -2 when out of memory. */
static Py_ssize_t maxscore_topk(const Segment *sg, const int64_t *tid, const double *wt, const double *ct,
                                Py_ssize_t n_terms, Py_ssize_t k, const float *units, const int64_t *bs,
                                const float *blocks, float *contrib, uint32_t *od, float *os) {
    if (k <= 0 || n_terms <= 0) return 0;
    Hit *heap = PyMem_RawMalloc(sizeof(Hit) * (size_t)k);
    Cursor *cur = PyMem_RawMalloc(sizeof(Cursor) * (size_t)n_terms);
    Cursor **order = PyMem_RawMalloc(sizeof(Cursor *) * (size_t)n_terms);
    double *prefix = PyMem_RawMalloc(sizeof(double) * (size_t)n_terms);
    float *vals = PyMem_RawCalloc((size_t)n_terms, sizeof(float));
    uint64_t *bits = PyMem_RawCalloc(WINDOW / 64, sizeof(uint64_t));
    Py_ssize_t *ess = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)n_terms);
    Py_ssize_t count = 0;
    int corrupt = 0;
    if (!heap || !cur || !order || !prefix || !vals || !bits || !ess) { count = -2; goto done; }
    const uint32_t *pd = sg->pd;
    const void *tfv = sg->tfv;
    const int wide = sg->wide, mode = sg->mode;
    const float *nm = sg->nm;
    const uint8_t *lv = sg->lv;
    const Py_ssize_t n_docs = sg->n_docs;
    const float fk1 = sg->k1, fdelta = sg->delta;
    for (Py_ssize_t t = 0; t < n_terms; t++) {
        Cursor *c = &cur[t];
        c->off = c->pos = sg->off[tid[t]];
        c->end = sg->off[tid[t] + 1];
        c->first_block = bs[tid[t]];
        c->wf = (float)wt[t];
        c->cf = (float)ct[t];
        c->ub = (double)c->wf * (double)units[tid[t]] + (mode == MODE_SATURATING ? (double)c->cf : 0.0);
        c->qi = t;
    }
    qsort(cur, (size_t)n_terms, sizeof(Cursor), compare_cursors);
    /* float scores vs double bounds: a few roundings per posting and one per term added */
    const double slack = 1.0 + (double)(n_terms + 8) * 2.5e-7;
    double theta = 0.0, global = 0.0;
    int full = 0;
    Py_ssize_t first = 0;  /* cur[first..] are the globally essential lists: only they start windows */
    for (;;) {
        uint64_t lo = UINT64_MAX;
        for (Py_ssize_t i = first; i < n_terms; i++)
            if (cur[i].pos < cur[i].end && pd[cur[i].pos] < lo) lo = pd[cur[i].pos];
        if (lo == UINT64_MAX) break;
        if (lo >= (uint64_t)n_docs) { corrupt = 1; break; }
        const uint64_t hi = lo + WINDOW;
        /* Each list's postings in [lo, hi) and its bound there, from its block maxima. */
        Py_ssize_t live_lists = 0;
        for (Py_ssize_t i = 0; i < n_terms; i++) {
            Cursor *c = &cur[i];
            c->lo = seek(pd, c->pos, c->end, lo);
            c->hi = seek(pd, c->lo, c->end, hi);
            c->wub = 0.0;
            if (c->hi > c->lo) {
                float bm = 0.0f;
                const int64_t b0 = c->first_block + (c->lo - c->off) / BLOCK;
                const int64_t b1 = c->first_block + (c->hi - 1 - c->off) / BLOCK;
                for (int64_t x = b0; x <= b1; x++) if (blocks[x] > bm) bm = blocks[x];
                c->wub = (double)c->wf * (double)bm + (mode == MODE_SATURATING ? (double)c->cf : 0.0);
                order[live_lists++] = c;
            }
        }
        /* The window's lists by bound (insertion sort: a handful of terms), and their running sums. */
        for (Py_ssize_t i = 1; i < live_lists; i++) {
            Cursor *x = order[i];
            Py_ssize_t j = i;
            while (j > 0 && order[j - 1]->wub > x->wub) { order[j] = order[j - 1]; j--; }
            order[j] = x;
        }
        double sum = 0.0;
        for (Py_ssize_t i = 0; i < live_lists; i++) { sum += order[i]->wub; prefix[i] = sum; }
        Py_ssize_t wfirst = 0;  /* order[wfirst..] are this window's essential lists */
        if (full) while (wfirst < live_lists && prefix[wfirst] * slack <= theta) wfirst++;
        if (wfirst < live_lists) {
            uint32_t last = 0;  /* the window's last document touched, relative to lo: the bitmap is read up to it */
            Py_ssize_t n_ess = 0;
            for (Py_ssize_t i = wfirst; i < live_lists && !corrupt; i++) {
                const Cursor *c = order[i];
                float *cw = contrib + (size_t)c->qi * WINDOW;
                ess[n_ess++] = c->qi;
                for (int64_t p = c->lo; p < c->hi; p++) {
                    const uint32_t d = pd[p];
                    if (d >= (uint32_t)n_docs) { corrupt = 1; break; }
                    const uint32_t j = d - (uint32_t)lo;
                    cw[j] = posting_score(mode, tf_at(tfv, wide, p), nm[d], c->wf, c->cf, fk1, fdelta);
                    bits[j >> 6] |= (uint64_t)1 << (j & 63);
                }
                if (pd[c->hi - 1] - lo > last) last = pd[c->hi - 1] - (uint32_t)lo;
            }
            if (corrupt) break;
            const double rest = wfirst > 0 ? prefix[wfirst - 1] : 0.0;
            for (uint32_t w = 0; w <= last >> 6; w++) {
                uint64_t word = bits[w];
                bits[w] = 0;
                while (word) {
                    const uint32_t j = (w << 6) + (uint32_t)__builtin_ctzll(word);
                    word &= word - 1;
                    const uint32_t d = (uint32_t)lo + j;
                    /* The essential lists' scores (0 where a list lacks d), taken out of the window as read. */
                    double partial = 0.0;
                    for (Py_ssize_t e = 0; e < n_ess; e++) {
                        float *slot = contrib + (size_t)ess[e] * WINDOW + j;
                        vals[ess[e]] = *slot;
                        partial += *slot;
                        *slot = 0.0f;
                    }
                    int pruned = (lv && !lv[d]) || (full && (partial + rest) * slack <= theta);
                    /* Probe the window's other lists, highest bound first, while the document can still pass. */
                    for (Py_ssize_t i = wfirst - 1; i >= 0 && !pruned; i--) {
                        if (full && (partial + prefix[i]) * slack <= theta) { pruned = 1; break; }
                        Cursor *c = order[i];
                        c->lo = seek(pd, c->lo, c->hi, d);
                        if (c->lo < c->hi && pd[c->lo] == d) {
                            const float sc = posting_score(mode, tf_at(tfv, wide, c->lo), nm[d], c->wf, c->cf, fk1,
                                                           fdelta);
                            vals[c->qi] = sc;
                            partial += sc;
                        }
                    }
                    if (!pruned && !(full && partial * slack <= theta)) {
                        /* The exact score: every term in query order, as the accumulating kernel adds them (a
                         * term without d adds 0.0f, which changes no float). */
                        float total = 0.0f;
                        for (Py_ssize_t q = 0; q < n_terms; q++) total += vals[q];
                        const Hit h = {total, d};
                        if (count < k) { heap[count] = h; heap_up(heap, count); count++; }
                        else if (better(h, heap[0])) { heap[0] = h; heap_down(heap, k, 0); }
                        if (count == k) { full = 1; theta = heap[0].score; }
                    }
                    for (Py_ssize_t q = 0; q < n_terms; q++) vals[q] = 0.0f;
                }
            }
        }
        for (Py_ssize_t i = 0; i < n_terms; i++) cur[i].pos = cur[i].hi;
        if (full) {
            /* lists sorted by global bound: the running sum of the lowest ones cannot pass theta */
            while (first < n_terms && global + cur[first].ub <= theta / slack) { global += cur[first].ub; first++; }
        }
    }
    if (!corrupt) {
        qsort(heap, (size_t)count, sizeof(Hit), compare_hits);
        for (Py_ssize_t m = 0; m < count; m++) { od[m] = heap[m].doc; os[m] = heap[m].score; }
    } else {
        memset(contrib, 0, sizeof(float) * (size_t)MAX_PRUNED_TERMS * WINDOW);  /* a window left half read */
        count = -1;
    }
done:
    PyMem_RawFree(heap); PyMem_RawFree(cur); PyMem_RawFree(order); PyMem_RawFree(prefix); PyMem_RawFree(vals);
    PyMem_RawFree(bits); PyMem_RawFree(ess);
    return count;
}

/* search_segment_maxscore(docs, tfs, offsets, term_ids, weights, consts, norms, live|None, mode, k1, delta, k,
 *                         units f32[V], block_starts i64[V+1], blocks f32, scratch f32[MAX_PRUNED_TERMS * WINDOW],
 *                         out_docs u32[k], out_scores f32[k]) -> hits written
 * scratch: the per-term window scores, all zero on entry and left all zero (reused across calls: no allocation). */
static PyObject *search_segment_maxscore(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[14];
    int mode;
    double k1, delta;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiddnOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7], &mode,
                          &k1, &delta, &k, &o[8], &o[9], &o[10], &o[11], &o[12], &o[13]))
        return NULL;
    if (mode != MODE_SATURATING && mode != MODE_BM25L && mode != MODE_IMPACT) {
        PyErr_SetString(PyExc_ValueError, "search_segment_maxscore: no bound for this scoring mode");
        return NULL;
    }
    Py_buffer b[14];
    const Py_ssize_t sizes[14] = {4, 0, 8, 8, 8, 8, 4, 1, 4, 8, 4, 4, 4, 4};
    const char *names[14] = {"docs", "tfs", "offsets", "term_ids", "weights", "consts", "norm", "live", "units",
                             "block_starts", "blocks", "scratch", "out_docs", "out_scores"};
    PyObject *result = NULL;
    const int got = get_bufs(o, b, sizes, names, 14, 11, 1u << 7);
    if (got < 14) goto release;
    const Py_ssize_t n_docs = b[6].len / 4, n_terms = b[3].len / 8, n_post = b[0].len / 4, n_vocab = b[2].len / 8 - 1;
    const int have_live = o[7] != Py_None;
    const int64_t *bs = b[9].buf;
    if (b[11].len / 4 < (Py_ssize_t)MAX_PRUNED_TERMS * WINDOW || b[12].len / 4 < k || b[13].len / 4 < k ||
        b[4].len / 8 != n_terms || b[5].len / 8 != n_terms || (have_live && b[7].len < n_docs) ||
        b[1].len / b[1].itemsize != n_post || b[8].len / 4 != n_vocab || b[9].len / 8 != n_vocab + 1 ||
        bs[n_vocab] != b[10].len / 4 || k < 0) {
        PyErr_SetString(PyExc_ValueError, "search_segment_maxscore: inconsistent array sizes");
        goto release;
    }
    if (!terms_in_range(b[2].buf, n_vocab, n_post, b[3].buf, n_terms)) {
        PyErr_SetString(PyExc_ValueError, "search_segment_maxscore: term id or posting range out of bounds");
        goto release;
    }
    if (!bounds_usable(b[2].buf, bs, b[3].buf, b[4].buf, b[5].buf, n_terms)) {
        PyErr_SetString(PyExc_ValueError, "search_segment_maxscore: weights and constants must be >= 0 and the blocks "
                        "match the postings");
        goto release;
    }
    if (n_terms > MAX_PRUNED_TERMS) {
        PyErr_Format(PyExc_ValueError, "search_segment_maxscore: at most %d terms", MAX_PRUNED_TERMS);
        goto release;
    }
    const Segment sg = {b[0].buf, b[1].buf, b[1].itemsize == 4, b[2].buf, b[6].buf, have_live ? b[7].buf : NULL,
                        n_docs, mode, (float)k1, (float)delta};
    Py_ssize_t count;
    Py_BEGIN_ALLOW_THREADS
    count = maxscore_topk(&sg, b[3].buf, b[4].buf, b[5].buf, n_terms, k, b[8].buf, bs, b[10].buf, b[11].buf,
                          b[12].buf, b[13].buf);
    Py_END_ALLOW_THREADS
    if (count == -1) PyErr_SetString(PyExc_ValueError, "search_segment_maxscore: document number out of range (corrupt index?)");
    else if (count < 0) PyErr_NoMemory();
    else result = PyLong_FromSsize_t(count);
release:
    release_bufs(o, b, got, 1u << 7);
    return result;
}

/* search_segment_batch(docs, tfs, offsets, term_ids, weights, consts, query_starts i64[nq+1], norms, live|None, mode,
 *                      k1, delta, k, units|None, block_starts|None, blocks|None, min_postings, max_k, acc, mark,
 *                      touched, scratch, out_docs u32[nq*k], out_scores f32[nq*k], out_counts i64[nq]) -> None
 * Many queries in one call: query q's terms are term_ids[query_starts[q]:query_starts[q+1]] (with their weights
 * and constants). Each is searched by MaxScore when bounds are given and the cost rule holds (a prunable mode,
 * 1..MAX_PRUNED_TERMS terms, weights and constants >= 0, k <= max_k, at least min_postings postings), else
 * exhaustively; out_counts[q] hits go to out_docs/out_scores[q*k ...]. */
static PyObject *search_segment_batch(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o[22];
    int mode;
    double k1, delta;
    Py_ssize_t k, min_postings, max_k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOiddnOOOnnOOOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6], &o[7],
                          &o[8], &mode, &k1, &delta, &k, &o[9], &o[10], &o[11], &min_postings, &max_k, &o[12], &o[13],
                          &o[14], &o[15], &o[16], &o[17], &o[18]))
        return NULL;
    const int pruning = o[9] != Py_None;
    if (pruning && (o[10] == Py_None || o[11] == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "search_segment_batch: units, block_starts and blocks go together");
        return NULL;
    }
    Py_buffer b[19];
    const Py_ssize_t sizes[19] = {4, 0, 8, 8, 8, 8, 8, 4, 1, 4, 8, 4, 4, 1, 4, 4, 4, 4, 8};
    const char *names[19] = {"docs", "tfs", "offsets", "term_ids", "weights", "consts", "query_starts", "norm", "live",
                             "units", "block_starts", "blocks", "acc", "mark", "touched", "scratch", "out_docs",
                             "out_scores", "out_counts"};
    /* None is allowed for live (8) and, without pruning, for the bounds (9-11) */
    const uint32_t optional = (1u << 8) | (pruning ? 0u : (7u << 9));
    PyObject *result = NULL;
    const int got = get_bufs(o, b, sizes, names, 19, 12, optional);
    if (got < 19) goto release;
    const Py_ssize_t n_docs = b[7].len / 4, n_all = b[3].len / 8, n_post = b[0].len / 4, n_vocab = b[2].len / 8 - 1;
    const Py_ssize_t nq = b[6].len / 8 - 1;
    const int have_live = o[8] != Py_None;
    const int64_t *qs = b[6].buf, *off = b[2].buf, *tid = b[3].buf;
    int bad = nq < 0 || k < 0 || b[4].len / 8 != n_all || b[5].len / 8 != n_all || b[12].len / 4 < n_docs ||
              b[13].len < n_docs || b[14].len / 4 < n_docs || b[16].len / 4 < nq * k || b[17].len / 4 < nq * k ||
              b[18].len / 8 < nq || (have_live && b[8].len < n_docs) || b[1].len / b[1].itemsize != n_post ||
              b[15].len / 4 < (Py_ssize_t)MAX_PRUNED_TERMS * WINDOW;
    if (!bad && pruning)
        bad = b[9].len / 4 != n_vocab || b[10].len / 8 != n_vocab + 1 ||
              ((const int64_t *)b[10].buf)[n_vocab] != b[11].len / 4;
    if (!bad && nq >= 0) {
        bad = qs[0] != 0 || qs[nq] != n_all;
        for (Py_ssize_t q = 0; !bad && q < nq; q++) bad = qs[q + 1] < qs[q];
    }
    if (bad) { PyErr_SetString(PyExc_ValueError, "search_segment_batch: inconsistent array sizes"); goto release; }
    if (!terms_in_range(off, n_vocab, n_post, tid, n_all)) {
        PyErr_SetString(PyExc_ValueError, "search_segment_batch: term id or posting range out of bounds");
        goto release;
    }
    const Segment sg = {b[0].buf, b[1].buf, b[1].itemsize == 4, off, b[7].buf, have_live ? b[8].buf : NULL, n_docs,
                        mode, (float)k1, (float)delta};
    const int prunable_mode = mode == MODE_SATURATING || mode == MODE_BM25L || mode == MODE_IMPACT;
    const double *wt = b[4].buf, *ct = b[5].buf;
    const int64_t *bs = pruning ? b[10].buf : NULL;
    int64_t *counts = b[18].buf;
    Py_ssize_t failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t q = 0; q < nq && failed >= 0; q++) {
        const Py_ssize_t a0 = qs[q], n = qs[q + 1] - qs[q];
        uint32_t *od = (uint32_t *)b[16].buf + q * k;
        float *os = (float *)b[17].buf + q * k;
        int prune = pruning && prunable_mode && n >= 1 && n <= MAX_PRUNED_TERMS && k > 0 && k <= max_k &&
                    bounds_usable(off, bs, tid + a0, wt + a0, ct + a0, n);
        if (prune) {
            Py_ssize_t postings = 0;
            for (Py_ssize_t t = a0; t < a0 + n; t++) postings += off[tid[t] + 1] - off[tid[t]];
            prune = postings >= min_postings;
        }
        const Py_ssize_t hits = prune
            ? maxscore_topk(&sg, tid + a0, wt + a0, ct + a0, n, k, b[9].buf, bs, b[11].buf, b[15].buf, od, os)
            : exhaustive_topk(&sg, tid + a0, wt + a0, ct + a0, n, k, b[12].buf, b[13].buf, b[14].buf, od, os);
        if (hits < 0) failed = hits;
        else counts[q] = hits;
    }
    Py_END_ALLOW_THREADS
    if (failed == -1) PyErr_SetString(PyExc_ValueError, "search_segment_batch: document number out of range (corrupt index?)");
    else if (failed < 0) PyErr_NoMemory();
    else result = Py_NewRef(Py_None);
release:
    release_bufs(o, b, got, optional);
    return result;
}

/* ---- Hamming top-k over packed bit codes ------------------------------------------------------------------------
 * hamming_topk(query_codes u8 (m, B), codes u8 (n, B), k, allowed u8 (n,) | None, out_ids i64 (m, k),
 *              out_dist i32 (m, k)[, isa]) -> filled (= min(k, allowed rows), the same for every query)
 *
 * Distances are XOR + popcount over 64-bit words (a zero-padded tail word when B is not a multiple of 8). Rows go
 * in tiles small enough to stay in L2 while every block of 8 queries scans them, so the codes are read from memory
 * once per call, not once per query block. Each query keeps a small candidate buffer and the distance of its k-th
 * best so far: rows are visited in increasing order, so a later row that does not beat that distance strictly can
 * never enter the result (ties go to the lower row), and almost every row is rejected by one comparison. A full
 * buffer is cut back to its k best. With AVX-512 VPOPCNTDQ the 8 queries of a block sit in the 8 lanes of a vector
 * and one broadcast code word is compared with all of them at once. isa: 0 = best available, 1 = scalar only. */
enum { HAM_QUERY_BLOCK = 8, HAM_TILE_ROWS = 4096, HAM_MAX_BYTES = 8191 };

typedef struct { uint32_t dist; uint32_t row; } HamHit;
typedef struct { HamHit *buf; Py_ssize_t count; } HamState;

static inline uint64_t load_word(const uint8_t *p) { uint64_t w; memcpy(&w, p, 8); return w; }

static inline uint64_t load_tail(const uint8_t *p, Py_ssize_t len) {
    uint64_t w = 0;
    memcpy(&w, p, (size_t)len);
    return w;
}

static int compare_ham(const void *x, const void *y) {
    const HamHit a = *(const HamHit *)x, b = *(const HamHit *)y;
    if (a.dist != b.dist) return a.dist < b.dist ? -1 : 1;
    return a.row < b.row ? -1 : (a.row > b.row ? 1 : 0);
}

/* Sort the buffer by (distance, row), keep the k best; from then on only strictly smaller distances can enter. */
static void ham_cut(HamState *st, Py_ssize_t k, uint64_t *thr) {
    qsort(st->buf, (size_t)st->count, sizeof(HamHit), compare_ham);
    if (st->count >= k) { st->count = k; *thr = st->buf[k - 1].dist; }
}

static inline void ham_push(HamState *st, Py_ssize_t cap, Py_ssize_t k, uint64_t *thr, uint32_t row, uint32_t d) {
    if (st->count == cap) {
        ham_cut(st, k, thr);
        if (d >= *thr) return;
    }
    st->buf[st->count].dist = d;
    st->buf[st->count].row = row;
    st->count++;
}

/* One block of nq <= 8 queries (words qw[w * 8 + j], zero for absent queries) over rows [r0, r1). The body is
 * inlined with a constant word count for common widths, so the word loop unrolls. thr[j] starts above every
 * distance (all rows enter until the buffer first fills). */
static inline __attribute__((always_inline)) void ham_block_body(
    const uint64_t *qw, Py_ssize_t nq, const uint8_t *codes, Py_ssize_t nbytes, Py_ssize_t r0, Py_ssize_t r1,
    const uint8_t *lv, HamState *st, uint64_t *thr, Py_ssize_t cap, Py_ssize_t k, const Py_ssize_t nw,
    const Py_ssize_t rem) {
    for (Py_ssize_t j = 0; j < nq; j++) {
        for (Py_ssize_t r = r0; r < r1; r++) {
            if (lv && !lv[r]) continue;
            const uint8_t *c = codes + r * nbytes;
            uint64_t acc = 0;
            for (Py_ssize_t w = 0; w < nw; w++)
                acc += (uint64_t)__builtin_popcountll(qw[w * 8 + j] ^ load_word(c + 8 * w));
            if (rem) acc += (uint64_t)__builtin_popcountll(qw[nw * 8 + j] ^ load_tail(c + 8 * nw, rem));
            if (acc < thr[j]) ham_push(st + j, cap, k, thr + j, (uint32_t)r, (uint32_t)acc);
        }
    }
}

#define HAM_ARGS qw, nq, codes, nbytes, r0, r1, lv, st, thr, cap, k
#define HAM_SWITCH(BODY)                                                                                         \
    switch (nbytes) {                                                                                           \
    case 16: BODY(HAM_ARGS, 2, 0); break;                                                                       \
    case 32: BODY(HAM_ARGS, 4, 0); break;                                                                       \
    case 48: BODY(HAM_ARGS, 6, 0); break;                                                                       \
    case 64: BODY(HAM_ARGS, 8, 0); break;                                                                       \
    case 96: BODY(HAM_ARGS, 12, 0); break;                                                                      \
    case 128: BODY(HAM_ARGS, 16, 0); break;                                                                     \
    default: BODY(HAM_ARGS, nbytes / 8, nbytes % 8);                                                            \
    }
#define DEFINE_HAM_BLOCK(NAME, ATTR, BODY)                                                                       \
    ATTR static void NAME(const uint64_t *qw, Py_ssize_t nq, const uint8_t *codes, Py_ssize_t nbytes,            \
                          Py_ssize_t r0, Py_ssize_t r1, const uint8_t *lv, HamState *st, uint64_t *thr,          \
                          Py_ssize_t cap, Py_ssize_t k) {                                                       \
        HAM_SWITCH(BODY)                                                                                        \
    }

typedef void (*HamBlock)(const uint64_t *, Py_ssize_t, const uint8_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t,
                         const uint8_t *, HamState *, uint64_t *, Py_ssize_t, Py_ssize_t);

DEFINE_HAM_BLOCK(ham_block_generic, , ham_block_body)
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* Built without -mpopcnt, __builtin_popcountll is a bit-trick routine; the popcnt instruction is chosen at run time. */
DEFINE_HAM_BLOCK(ham_block_popcnt, __attribute__((target("popcnt"))), ham_block_body)

/* The 8 queries in the lanes of one vector: per row, each code word is broadcast, XORed with word w of all 8
 * queries, and the lane popcounts summed; one compare against the 8 thresholds rejects the row for every query. */
static inline __attribute__((always_inline, target("avx512f,avx512vpopcntdq"))) void ham_block_avx512_body(
    const uint64_t *qw, Py_ssize_t nq, const uint8_t *codes, Py_ssize_t nbytes, Py_ssize_t r0, Py_ssize_t r1,
    const uint8_t *lv, HamState *st, uint64_t *thr, Py_ssize_t cap, Py_ssize_t k, const Py_ssize_t nw,
    const Py_ssize_t rem) {
    const __mmask8 lanes = (__mmask8)((1u << nq) - 1u);
    __m512i limit = _mm512_loadu_si512((const void *)thr);
    uint64_t lane_dist[8];
    for (Py_ssize_t r = r0; r < r1; r++) {
        if (lv && !lv[r]) continue;
        const uint8_t *c = codes + r * nbytes;
        __m512i acc = _mm512_setzero_si512();
        for (Py_ssize_t w = 0; w < nw; w++) {
            const __m512i x = _mm512_xor_si512(_mm512_set1_epi64((long long)load_word(c + 8 * w)),
                                               _mm512_loadu_si512((const void *)(qw + 8 * w)));
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
        }
        if (rem) {
            const __m512i x = _mm512_xor_si512(_mm512_set1_epi64((long long)load_tail(c + 8 * nw, rem)),
                                               _mm512_loadu_si512((const void *)(qw + 8 * nw)));
            acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
        }
        __mmask8 hit = _mm512_mask_cmplt_epu64_mask(lanes, acc, limit);
        if (!hit) continue;
        _mm512_storeu_si512((void *)lane_dist, acc);
        for (unsigned j = 0; hit; j++, hit >>= 1)
            if (hit & 1u) ham_push(st + j, cap, k, thr + j, (uint32_t)r, (uint32_t)lane_dist[j]);
        limit = _mm512_loadu_si512((const void *)thr);
    }
}
DEFINE_HAM_BLOCK(ham_block_avx512, __attribute__((target("avx512f,avx512vpopcntdq"))), ham_block_avx512_body)

static HamBlock pick_ham_block(int isa, Py_ssize_t nq) {
    __builtin_cpu_init();
    /* One or two queries would leave most vector lanes idle: scalar popcnt is faster there. */
    if (isa == 0 && nq > 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))
        return ham_block_avx512;
    return __builtin_cpu_supports("popcnt") ? ham_block_popcnt : ham_block_generic;
}
#else
static HamBlock pick_ham_block(int isa, Py_ssize_t nq) { (void)isa; (void)nq; return ham_block_generic; }
#endif

static PyObject *hamming_topk(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_q, *o_codes, *o_allowed, *o_ids, *o_dist;
    Py_ssize_t k;
    int isa = 0;
    if (!PyArg_ParseTuple(args, "OOnOOO|i", &o_q, &o_codes, &k, &o_allowed, &o_ids, &o_dist, &isa)) return NULL;
    Py_buffer qb, cb, ab, ib, db;
    const int have_allowed = o_allowed != Py_None;
    PyObject *result = NULL;
    if (get_buf(o_q, &qb, 1, "query_codes", 0) < 0) return NULL;
    if (get_buf(o_codes, &cb, 1, "codes", 0) < 0) goto rel_q;
    if (have_allowed && get_buf(o_allowed, &ab, 1, "allowed", 0) < 0) goto rel_c;
    if (get_buf(o_ids, &ib, 8, "out_ids", 1) < 0) goto rel_a;
    if (get_buf(o_dist, &db, 4, "out_dist", 1) < 0) goto rel_i;
    if (qb.ndim != 2 || cb.ndim != 2 || qb.shape[1] != cb.shape[1] || ib.ndim != 2 || db.ndim != 2 ||
        ib.shape[0] != qb.shape[0] || db.shape[0] != qb.shape[0] || ib.shape[1] != k || db.shape[1] != k ||
        (have_allowed && (ab.ndim != 1 || ab.shape[0] != cb.shape[0])) || k < 0) {
        PyErr_SetString(PyExc_ValueError, "hamming_topk: inconsistent array shapes");
        goto rel_d;
    }
    const Py_ssize_t m = qb.shape[0], n = cb.shape[0], nbytes = cb.shape[1];
    if (nbytes > HAM_MAX_BYTES || n > (Py_ssize_t)UINT32_MAX) {
        PyErr_Format(PyExc_ValueError, "hamming_topk: at most %d bytes per code and 2^32 rows, got %zd x %zd",
                     HAM_MAX_BYTES, n, nbytes);
        goto rel_d;
    }
    Py_ssize_t filled = 0;
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *lv = have_allowed ? ab.buf : NULL;
    Py_ssize_t allowed_rows = n;
    if (lv) { allowed_rows = 0; for (Py_ssize_t r = 0; r < n; r++) allowed_rows += lv[r] != 0; }
    filled = k < allowed_rows ? k : allowed_rows;
    const Py_ssize_t nw1 = nbytes / 8 + 1, blocks = (m + HAM_QUERY_BLOCK - 1) / HAM_QUERY_BLOCK;
    const Py_ssize_t cap = 2 * filled + 256;  /* cut rarely, keep the buffers small enough for cache */
    const int run = m > 0 && filled > 0;
    uint64_t *qw = run ? PyMem_RawCalloc((size_t)(blocks * nw1 * 8), sizeof(uint64_t)) : NULL;
    uint64_t *thr = run ? PyMem_RawMalloc(sizeof(uint64_t) * (size_t)(blocks * 8)) : NULL;
    HamState *st = run ? PyMem_RawCalloc((size_t)(blocks * 8), sizeof(HamState)) : NULL;
    HamHit *bufs = run ? PyMem_RawMalloc(sizeof(HamHit) * (size_t)(m * cap)) : NULL;
    if (run && (!qw || !thr || !st || !bufs)) oom = 1;
    if (run && !oom) {
        const uint8_t *qbytes = qb.buf, *codes = cb.buf;
        for (Py_ssize_t i = 0; i < m; i++) {  /* query i -> block i / 8, lane i % 8, words transposed */
            const uint8_t *src = qbytes + i * nbytes;
            uint64_t *dst = qw + (i / 8) * nw1 * 8 + i % 8;
            for (Py_ssize_t w = 0; w < nbytes / 8; w++) dst[w * 8] = load_word(src + 8 * w);
            if (nbytes % 8) dst[(nbytes / 8) * 8] = load_tail(src + 8 * (nbytes / 8), nbytes % 8);
            st[i].buf = bufs + i * cap;
        }
        for (Py_ssize_t i = 0; i < blocks * 8; i++) thr[i] = (uint64_t)(8 * nbytes) + 1;
        const HamBlock wide = pick_ham_block(isa, 8), narrow = pick_ham_block(isa, 1);
        for (Py_ssize_t r0 = 0; r0 < n; r0 += HAM_TILE_ROWS) {
            const Py_ssize_t r1 = n - r0 < HAM_TILE_ROWS ? n : r0 + HAM_TILE_ROWS;
            for (Py_ssize_t b = 0; b < blocks; b++) {
                const Py_ssize_t nq = m - b * 8 < 8 ? m - b * 8 : 8;
                (nq > 2 ? wide : narrow)(qw + b * nw1 * 8, nq, codes, nbytes, r0, r1, lv, st + b * 8, thr + b * 8, cap,
                                         filled);
            }
        }
    }
    for (Py_ssize_t i = 0; i < m && !oom; i++) {
        int64_t *ids = (int64_t *)ib.buf + i * k;
        int32_t *dist = (int32_t *)db.buf + i * k;
        Py_ssize_t p = 0;
        if (run) {
            ham_cut(st + i, filled, thr + i);
            for (; p < st[i].count; p++) { ids[p] = st[i].buf[p].row; dist[p] = (int32_t)st[i].buf[p].dist; }
        }
        for (; p < k; p++) { ids[p] = -1; dist[p] = -1; }
    }
    PyMem_RawFree(qw); PyMem_RawFree(thr); PyMem_RawFree(st); PyMem_RawFree(bufs);
    Py_END_ALLOW_THREADS
    if (oom) PyErr_NoMemory();
    else result = PyLong_FromSsize_t(filled);
rel_d: PyBuffer_Release(&db);
rel_i: PyBuffer_Release(&ib);
rel_a: if (have_allowed) PyBuffer_Release(&ab);
rel_c: PyBuffer_Release(&cb);
rel_q: PyBuffer_Release(&qb);
    return result;
}

/* The indexer's token -> term id step for one chunk of documents: `out[i]` = table[tokens[i]] (a term id, or -1
 * for a token the analyzer drops). A token missing from the table gets -2 - j, j its place in the returned list of
 * the chunk's distinct new tokens (first-seen order), so that the caller analyses only those and patches them in
 * one vectorised step. In Python this loop (a dict lookup per token, ~2M tokens a chunk) cost about a third of
 * indexing; here each lookup reuses the str's cached hash and costs a few tens of nanoseconds. */
static PyObject *token_ids(PyObject *self, PyObject *args) {
    PyObject *tokens, *table;
    Py_buffer out;
    if (!PyArg_ParseTuple(args, "O!O!w*", &PyList_Type, &tokens, &PyDict_Type, &table, &out)) return NULL;
    const Py_ssize_t n = PyList_GET_SIZE(tokens);
    if (out.itemsize != (Py_ssize_t)sizeof(int64_t) || out.len < n * (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&out);
        PyErr_SetString(PyExc_ValueError, "token_ids: out must be an int64 buffer at least as long as tokens");
        return NULL;
    }
    int64_t *ids = (int64_t *)out.buf;
    PyObject *missing = PyList_New(0), *seen = PyDict_New();
    if (!missing || !seen) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *token = PyList_GET_ITEM(tokens, i);
        PyObject *value = PyDict_GetItemWithError(table, token);  /* borrowed */
        if (value == NULL) {
            if (PyErr_Occurred()) goto fail;
            value = PyDict_GetItemWithError(seen, token);
            if (value == NULL) {
                if (PyErr_Occurred()) goto fail;
                value = PyLong_FromSsize_t(PyList_GET_SIZE(missing));
                if (!value || PyDict_SetItem(seen, token, value) < 0 || PyList_Append(missing, token) < 0) {
                    Py_XDECREF(value);
                    goto fail;
                }
                Py_DECREF(value);  /* `seen` holds it */
            }
            const long long j = PyLong_AsLongLong(value);
            if (j == -1 && PyErr_Occurred()) goto fail;
            ids[i] = -2 - j;
            continue;
        }
        const long long id = PyLong_AsLongLong(value);
        if (id == -1 && PyErr_Occurred()) goto fail;
        ids[i] = id;
    }
    Py_DECREF(seen);
    PyBuffer_Release(&out);
    return missing;
fail:
    Py_XDECREF(missing);
    Py_XDECREF(seen);
    PyBuffer_Release(&out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"search_segment", search_segment, METH_VARARGS, "Accumulate term scores for one segment and return the top k."},
    {"hamming_topk", hamming_topk, METH_VARARGS, "The k nearest packed bit codes to each query by Hamming distance."},
    {"term_bounds", term_bounds, METH_VARARGS, "Each term's largest unit-weight posting score for given norms."},
    {"search_segment_batch", search_segment_batch, METH_VARARGS,
     "Top k of many queries in one segment, each by MaxScore or exhaustively by the cost rule."},
    {"search_segment_maxscore", search_segment_maxscore, METH_VARARGS,
     "Exact top k of one segment by MaxScore dynamic pruning (same results as search_segment)."},
    {"token_ids", token_ids, METH_VARARGS, "Term ids of a chunk's tokens through a dict; returns the new tokens."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "Compiled search kernels.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "BLOCK", BLOCK) < 0 || PyModule_AddIntConstant(m, "WINDOW", WINDOW) < 0 ||
              PyModule_AddIntConstant(m, "MAX_PRUNED_TERMS", MAX_PRUNED_TERMS) < 0)) { Py_DECREF(m); return NULL; }
    return m;
}
