/* Score-accumulation and top-k kernels for the inverted index.
 *
 * Term-at-a-time over the query's posting lists into a per-thread accumulator, tracking touched documents so
 * that clearing and top-k selection cost O(touched), not O(collection). The GIL is released, so batch search
 * scales over threads. Arrays arrive through the buffer protocol (no numpy headers needed to build). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { MODE_SATURATING = 0, MODE_BM25L = 1, MODE_DIRICHLET = 2 };

typedef struct { float score; uint32_t doc; } Hit;

/* a is worse than b: lower score, or equal score and later document (earlier documents win ties). */
static inline int worse(Hit a, Hit b) { return a.score < b.score || (a.score == b.score && a.doc > b.doc); }

static void sift_down(Hit *h, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        Hit t = h[i]; h[i] = h[m]; h[m] = t; i = m;
    }
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

/* search_segment(docs u32, tfs u16|u32, offsets i64[V+1], term_ids i64, weights f64, consts f64, norm f32, live u8|None,
 *                mode, k1, delta, k, acc f32[n], mark u8[n], touched u32[n], out_docs u32[k], out_scores f32[k])
 *  -> number of hits written */
static PyObject *search_segment(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_docs, *o_tfs, *o_starts, *o_ends, *o_w, *o_c, *o_norm, *o_live, *o_acc, *o_mark, *o_touched,
        *o_out_docs, *o_out_scores;
    int mode;
    double k1, delta;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OOOOOOOOiddnOOOOO", &o_docs, &o_tfs, &o_starts, &o_ends, &o_w, &o_c, &o_norm,
                          &o_live, &mode, &k1, &delta, &k, &o_acc, &o_mark, &o_touched, &o_out_docs, &o_out_scores))
        return NULL;
    Py_buffer docs, tfs, starts, ends, w, c, norm, live, acc, mark, touched, out_docs, out_scores;
    int have_live = o_live != Py_None;
    memset(&live, 0, sizeof live);
    if (get_buf(o_docs, &docs, 4, "docs", 0) < 0) return NULL;
    if (PyObject_GetBuffer(o_tfs, &tfs, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto fail0;
    if (tfs.itemsize != 2 && tfs.itemsize != 4) { PyErr_SetString(PyExc_TypeError, "tfs must be uint16 or uint32"); goto fail1; }
    if (get_buf(o_starts, &starts, 8, "offsets", 0) < 0) goto fail1;
    if (get_buf(o_ends, &ends, 8, "term_ids", 0) < 0) goto fail2;
    if (get_buf(o_w, &w, 8, "weights", 0) < 0) goto fail3;
    if (get_buf(o_c, &c, 8, "consts", 0) < 0) goto fail4;
    if (get_buf(o_norm, &norm, 4, "norm", 0) < 0) goto fail5;
    if (have_live && get_buf(o_live, &live, 1, "live", 0) < 0) goto fail6;
    if (get_buf(o_acc, &acc, 4, "acc", 1) < 0) goto fail7;
    if (get_buf(o_mark, &mark, 1, "mark", 1) < 0) goto fail8;
    if (get_buf(o_touched, &touched, 4, "touched", 1) < 0) goto fail9;
    if (get_buf(o_out_docs, &out_docs, 4, "out_docs", 1) < 0) goto fail10;
    if (get_buf(o_out_scores, &out_scores, 4, "out_scores", 1) < 0) goto fail11;

    Py_ssize_t n_docs = norm.len / 4, n_terms = ends.len / 8, n_post = docs.len / 4, n_vocab = starts.len / 8 - 1;
    if (acc.len / 4 < n_docs || mark.len < n_docs || touched.len / 4 < n_docs || out_docs.len / 4 < k ||
        out_scores.len / 4 < k || w.len / 8 != n_terms || c.len / 8 != n_terms ||
        (have_live && live.len < n_docs) || tfs.len / tfs.itemsize != n_post) {
        PyErr_SetString(PyExc_ValueError, "search_segment: inconsistent array sizes");
        goto fail12;
    }
    const int64_t *off = starts.buf, *tid = ends.buf;
    for (Py_ssize_t t = 0; t < n_terms; t++) {
        if (tid[t] < 0 || tid[t] >= n_vocab || off[tid[t]] < 0 || off[tid[t] + 1] < off[tid[t]] ||
            off[tid[t] + 1] > n_post) {
            PyErr_SetString(PyExc_ValueError, "search_segment: term id or posting range out of bounds");
            goto fail12;
        }
    }
    const uint32_t *pd = docs.buf;
    Py_ssize_t n_hits = 0;
    int corrupt = 0;
    Py_BEGIN_ALLOW_THREADS
    float *a = acc.buf;
    uint8_t *mk = mark.buf;
    uint32_t *tc = touched.buf;
    const float *nm = norm.buf;
    const double *wt = w.buf, *ct = c.buf;
    const uint16_t *tf16 = tfs.itemsize == 2 ? tfs.buf : NULL;
    const uint32_t *tf32 = tfs.itemsize == 4 ? tfs.buf : NULL;
    Py_ssize_t n_touched = 0;
    for (Py_ssize_t t = 0; t < n_terms; t++) {
        const float wf = (float)wt[t], cf = (float)ct[t];
        const int64_t first = off[tid[t]], last = off[tid[t] + 1];
        for (int64_t p = first; p < last; p++) {
            uint32_t d = pd[p];
            if (d >= (uint64_t)n_docs) { corrupt = 1; break; }
            float tf = tf16 ? (float)tf16[p] : (float)tf32[p];
            float s;
            if (mode == MODE_SATURATING) {
                s = wf * (tf / (tf + nm[d])) + cf;
            } else if (mode == MODE_BM25L) {
                float x = tf / nm[d] + (float)delta;
                s = wf * x / ((float)k1 + x);
            } else {
                s = logf(1.0f + tf * cf) + nm[d];
                s = s > 0.0f ? wf * s : 0.0f;
            }
            if (!mk[d]) { mk[d] = 1; tc[n_touched++] = d; }
            a[d] += s;
        }
        if (corrupt) break;
    }
    /* top-k by a bounded min-heap over the touched documents */
    Hit *heap = corrupt ? NULL : (Hit *)PyMem_RawMalloc(sizeof(Hit) * (size_t)(k > 0 ? k : 1));
    const uint8_t *lv = have_live ? live.buf : NULL;
    if (heap) {
        for (Py_ssize_t i = 0; i < n_touched; i++) {
            uint32_t d = tc[i];
            if (lv && !lv[d]) continue;
            Hit h = {a[d], d};
            if (n_hits < k) {
                heap[n_hits++] = h;
                if (n_hits == k)
                    for (Py_ssize_t j = k / 2; j-- > 0;) sift_down(heap, k, j);
            } else if (k > 0 && worse(heap[0], h)) {
                heap[0] = h;
                sift_down(heap, k, 0);
            }
        }
        if (n_hits < k)
            for (Py_ssize_t j = n_hits / 2; j-- > 0;) sift_down(heap, n_hits, j);
        /* pop worst-first into the output from the back */
        uint32_t *od = out_docs.buf;
        float *os = out_scores.buf;
        for (Py_ssize_t m = n_hits; m > 0; m--) {
            od[m - 1] = heap[0].doc;
            os[m - 1] = heap[0].score;
            heap[0] = heap[m - 1];
            sift_down(heap, m - 1, 0);
        }
        PyMem_RawFree(heap);
    }
    for (Py_ssize_t i = 0; i < n_touched; i++) { a[tc[i]] = 0.0f; mk[tc[i]] = 0; }
    if (!heap) n_hits = -1;
    Py_END_ALLOW_THREADS
    if (corrupt) { PyErr_SetString(PyExc_ValueError, "search_segment: document number out of range (corrupt index?)"); goto fail12; }
    if (n_hits < 0) { PyErr_NoMemory(); goto fail12; }

    PyBuffer_Release(&out_scores); PyBuffer_Release(&out_docs); PyBuffer_Release(&touched); PyBuffer_Release(&mark);
    PyBuffer_Release(&acc); if (have_live) PyBuffer_Release(&live); PyBuffer_Release(&norm); PyBuffer_Release(&c);
    PyBuffer_Release(&w); PyBuffer_Release(&ends); PyBuffer_Release(&starts); PyBuffer_Release(&tfs);
    PyBuffer_Release(&docs);
    return PyLong_FromSsize_t(n_hits);

fail12: PyBuffer_Release(&out_scores);
fail11: PyBuffer_Release(&out_docs);
fail10: PyBuffer_Release(&touched);
fail9: PyBuffer_Release(&mark);
fail8: PyBuffer_Release(&acc);
fail7: if (have_live) PyBuffer_Release(&live);
fail6: PyBuffer_Release(&norm);
fail5: PyBuffer_Release(&c);
fail4: PyBuffer_Release(&w);
fail3: PyBuffer_Release(&ends);
fail2: PyBuffer_Release(&starts);
fail1: PyBuffer_Release(&tfs);
fail0: PyBuffer_Release(&docs);
    return NULL;
}

static PyMethodDef methods[] = {
    {"search_segment", search_segment, METH_VARARGS, "Accumulate term scores for one segment and return the top k."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "Compiled search kernels.", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
