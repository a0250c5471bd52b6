/* The order book's hot loops (moonship_core.book), compiled: the same algorithm on the same Python objects
 * as book.py's pure-Python `_apply_levels` and `_Side.top`, which stay the fallback. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *Decimal, *InvalidOperation, *ZERO, *INFINITY_;
static PyObject *s_pcache, *s_keys, *s_levels, *s_prices, *s_dirty, *s_tops, *s_top_worst;

/* The index of `key` in the sorted list `keys`: before equal items (left) or after them (right); -1 on error. */
static Py_ssize_t
bisect(PyObject *keys, PyObject *key, int right)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys);
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        PyObject *item = PyList_GET_ITEM(keys, mid);
        Py_INCREF(item);
        int below = right ? PyObject_RichCompareBool(key, item, Py_LT)
                          : PyObject_RichCompareBool(item, key, Py_LT);
        Py_DECREF(item);
        if (below < 0)
            return -1;
        if (below == right)
            hi = mid;
        else
            lo = mid + 1;
        if (hi > PyList_GET_SIZE(keys)) {
            PyErr_SetString(PyExc_RuntimeError, "the book changed while it was searched");
            return -1;
        }
    }
    return lo;
}

/* `qty in zeros`, where every text in `zeros` is made of '0' and '.' only (book.py's _ZEROS): a text with
 * any other character is not looked up, which spares hashing it. 1, 0, or -1 on error. */
static int
is_zero(PyObject *zeros, PyObject *qty)
{
    if (PyUnicode_CheckExact(qty) && PyUnicode_KIND(qty) == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *text = PyUnicode_1BYTE_DATA(qty);
        for (Py_ssize_t i = 0, size = PyUnicode_GET_LENGTH(qty); i < size; i++) {
            if (text[i] != '0' && text[i] != '.')
                return 0;
        }
    }
    return PySet_Contains(zeros, qty);
}

/* `price, qty = item` as the interpreter unpacks it: 0, or -1 with the same exception. */
static int
unpack_pair(PyObject *item, PyObject **price, PyObject **qty)
{
    if ((PyTuple_CheckExact(item) || PyList_CheckExact(item)) && Py_SIZE(item) == 2) {
        PyObject **pair = PyTuple_CheckExact(item) ? &PyTuple_GET_ITEM(item, 0) : &PyList_GET_ITEM(item, 0);
        *price = Py_NewRef(pair[0]);
        *qty = Py_NewRef(pair[1]);
        return 0;
    }
    PyObject *it = PyObject_GetIter(item);
    if (it == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError) && Py_TYPE(item)->tp_iter == NULL &&
            !PySequence_Check(item)) {
            PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.200s object", Py_TYPE(item)->tp_name);
        }
        return -1;
    }
    PyObject *got[3] = {NULL, NULL, NULL};
    Py_ssize_t n = 0;
    for (; n < 3; n++) {
        got[n] = PyIter_Next(it);
        if (got[n] == NULL)
            break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        n = -1;
    } else if (n < 2) {
        PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)", n);
    } else if (n > 2) {
        PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
    }
    if (n != 2) {
        Py_XDECREF(got[0]);
        Py_XDECREF(got[1]);
        Py_XDECREF(got[2]);
        return -1;
    }
    *price = got[0];
    *qty = got[1];
    return 0;
}

/* After a side changed at `best` (its best changed key): what covered it is invalidated. 0, or -1. */
static int
invalidate(PyObject *side, PyObject *best, PyObject *no_key)
{
    PyObject *dirty = PyObject_GetAttr(side, s_dirty);
    if (dirty == NULL)
        return -1;
    int later = PyObject_RichCompareBool(best, dirty, Py_GT);
    Py_DECREF(dirty);
    if (later < 0 || (later && PyObject_SetAttr(side, s_dirty, best) < 0))
        return -1;
    PyObject *top_worst = PyObject_GetAttr(side, s_top_worst);
    if (top_worst == NULL)
        return -1;
    int covered = PyObject_RichCompareBool(best, top_worst, Py_GE);
    Py_DECREF(top_worst);
    if (covered <= 0)
        return covered;
    PyObject *tops = PyObject_GetAttr(side, s_tops);
    if (tops == NULL)
        return -1;
    int cleared = PyDict_Check(tops) ? (PyDict_Clear(tops), 0) : -1;
    if (cleared < 0)
        PyErr_SetString(PyExc_TypeError, "tops must be a dict");
    Py_DECREF(tops);
    return cleared < 0 ? -1 : PyObject_SetAttr(side, s_top_worst, no_key);
}

/* apply_levels(side, levels, parse_price, zeros, no_key): see book.py's `_apply_levels`. */
static PyObject *
apply_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "apply_levels expected 5 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *side = args[0], *levels = args[1], *parse_price = args[2], *zeros = args[3];
    PyObject *pcache = NULL, *keys = NULL, *book = NULL, *it = NULL, *item = NULL;
    PyObject *price = NULL, *qty = NULL, *key = NULL, *best = NULL;  /* best: the best key changed */
    int failed = 1;

    pcache = PyObject_GetAttr(side, s_pcache);
    keys = pcache ? PyObject_GetAttr(side, s_keys) : NULL;
    book = keys ? PyObject_GetAttr(side, s_levels) : NULL;
    if (book == NULL)
        goto done;
    if (!PyDict_Check(pcache) || !PyList_Check(keys) || !PyDict_Check(book)) {
        PyErr_SetString(PyExc_TypeError, "a side's pcache, keys and levels must be a dict, a list and a dict");
        goto done;
    }
    it = PyObject_GetIter(levels);
    if (it == NULL)
        goto done;
    while ((item = PyIter_Next(it)) != NULL) {
        if (unpack_pair(item, &price, &qty) < 0)
            goto done;
        Py_CLEAR(item);
        key = Py_XNewRef(PyDict_GetItemWithError(pcache, price));
        if (key == NULL) {
            if (PyErr_Occurred())
                goto done;
            PyObject *call[2] = {price, side};
            key = PyObject_Vectorcall(parse_price, call, 2, NULL);
            if (key == NULL)
                goto done;
        }
        int zero = is_zero(zeros, qty);
        if (zero < 0)
            goto done;
        int present = PyDict_Contains(book, key);
        if (present < 0)
            goto done;
        if (zero) {
            if (!present) {
                Py_CLEAR(price);
                Py_CLEAR(qty);
                Py_CLEAR(key);
                continue;
            }
            if (PyDict_DelItem(book, key) < 0)
                goto done;
            Py_ssize_t at = bisect(keys, key, 0);
            if (at < 0 || PyList_SetSlice(keys, at, at + 1, NULL) < 0)
                goto done;
        } else {
            if (!present) {
                Py_ssize_t at = bisect(keys, key, 1);
                if (at < 0 || PyList_Insert(keys, at, key) < 0)
                    goto done;
            }
            if (PyDict_SetItem(book, key, qty) < 0)
                goto done;
        }
        int better = best == NULL ? 1 : PyObject_RichCompareBool(key, best, Py_GT);
        if (better < 0)
            goto done;
        if (better)
            Py_XSETREF(best, Py_NewRef(key));
        Py_CLEAR(price);
        Py_CLEAR(qty);
        Py_CLEAR(key);
    }
    failed = PyErr_Occurred() != NULL;
done:
    /* as a `finally`: whatever was applied before an error is invalidated, then the error raised */
    if (best != NULL) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (invalidate(side, best, args[4]) < 0) {
            failed = 1;
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(traceback);
        } else {
            PyErr_Restore(type, value, traceback);
        }
    }
    Py_XDECREF(pcache);
    Py_XDECREF(keys);
    Py_XDECREF(book);
    Py_XDECREF(it);
    Py_XDECREF(item);
    Py_XDECREF(price);
    Py_XDECREF(qty);
    Py_XDECREF(key);
    Py_XDECREF(best);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* A quantity as stored (text or Decimal) to a positive Decimal, or a ValueError naming it. */
static PyObject *
parse_quantity(PyObject *value)
{
    PyObject *quantity = PyObject_CallOneArg(Decimal, value);
    if (quantity != NULL) {
        int positive = PyObject_RichCompareBool(ZERO, quantity, Py_LT);
        int finite = positive > 0 ? PyObject_RichCompareBool(quantity, INFINITY_, Py_LT) : positive;
        if (finite > 0)
            return quantity;
        Py_DECREF(quantity);
        if (finite < 0 && !PyErr_ExceptionMatches(InvalidOperation))
            return NULL;
    } else if (!PyErr_ExceptionMatches(InvalidOperation)) {
        return NULL;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "malformed quantity %R", value);
    return NULL;
}

/* top(side, n, no_key): see book.py's `_Side.top`. */
static PyObject *
top(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "top expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *side = args[0], *n_obj = args[1], *no_key = args[2];
    Py_ssize_t n = PyNumber_AsSsize_t(n_obj, NULL);  /* clamped: n beyond the book takes it all */
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n <= 0)
        return PyTuple_New(0);
    PyObject *keys = NULL, *levels = NULL, *prices = NULL, *tops = NULL, *result = NULL, *worst = NULL;
    PyObject *top_worst = NULL;
    keys = PyObject_GetAttr(side, s_keys);
    levels = keys ? PyObject_GetAttr(side, s_levels) : NULL;
    prices = levels ? PyObject_GetAttr(side, s_prices) : NULL;
    tops = prices ? PyObject_GetAttr(side, s_tops) : NULL;
    if (tops == NULL)
        goto error;
    if (!PyList_Check(keys) || !PyDict_Check(levels) || !PyDict_Check(prices) || !PyDict_Check(tops)) {
        PyErr_SetString(PyExc_TypeError, "a side's keys must be a list, its levels, prices and tops dicts");
        goto error;
    }
    Py_ssize_t size = PyList_GET_SIZE(keys), count = n < size ? n : size;
    result = PyTuple_New(count);
    if (result == NULL)
        goto error;
    for (Py_ssize_t i = 0; i < count; i++) {  /* best first: from the end of `keys` */
        if (PyList_GET_SIZE(keys) != size) {
            PyErr_SetString(PyExc_RuntimeError, "the book changed while it was read");
            goto error;
        }
        PyObject *key = PyList_GET_ITEM(keys, size - 1 - i);
        PyObject *level = PyDict_GetItemWithError(levels, key);
        if (level == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, key);
            goto error;
        }
        Py_INCREF(level);
        if (!PyTuple_CheckExact(level)) {  /* changed since last read: parse it, and keep the pair */
            Py_INCREF(key);
            PyObject *price = PyDict_GetItemWithError(prices, key);
            PyObject *quantity = NULL, *pair = NULL;
            if (price == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, key);
            } else if ((quantity = parse_quantity(level)) != NULL) {
                pair = PyTuple_Pack(2, price, quantity);
                Py_DECREF(quantity);
                if (pair != NULL && PyDict_SetItem(levels, key, pair) < 0)
                    Py_CLEAR(pair);
            }
            Py_DECREF(key);
            Py_SETREF(level, pair);
            if (level == NULL)
                goto error;
        }
        PyTuple_SET_ITEM(result, i, level);
    }
    if (PyDict_SetItem(tops, n_obj, result) < 0)
        goto error;
    /* fewer than n levels is the whole side, which any change alters */
    worst = count == n ? Py_XNewRef(PyList_GetItem(keys, size - count)) : PyNumber_Negative(no_key);
    if (worst == NULL)
        goto error;
    top_worst = PyObject_GetAttr(side, s_top_worst);
    if (top_worst == NULL)
        goto error;
    int lower = PyObject_RichCompareBool(worst, top_worst, Py_LT);
    if (lower < 0 || (lower && PyObject_SetAttr(side, s_top_worst, worst) < 0))
        goto error;
    Py_DECREF(keys);
    Py_DECREF(levels);
    Py_DECREF(prices);
    Py_DECREF(tops);
    Py_DECREF(worst);
    Py_DECREF(top_worst);
    return result;
error:
    Py_XDECREF(keys);
    Py_XDECREF(levels);
    Py_XDECREF(prices);
    Py_XDECREF(tops);
    Py_XDECREF(result);
    Py_XDECREF(worst);
    Py_XDECREF(top_worst);
    return NULL;
}

static PyMethodDef methods[] = {
    {"apply_levels", (PyCFunction)(void (*)(void))apply_levels, METH_FASTCALL,
     "apply_levels(side, levels, parse_price, zeros, no_key): apply one side's (price, quantity) levels."},
    {"top", (PyCFunction)(void (*)(void))top, METH_FASTCALL,
     "top(side, n, no_key): the best n levels of a side, remembered in its tops."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "moonship_core._book", "The order book's hot loops, compiled.", -1, methods,
};

PyMODINIT_FUNC
PyInit__book(void)
{
    PyObject *decimal = PyImport_ImportModule("decimal");
    if (decimal == NULL)
        return NULL;
    Decimal = PyObject_GetAttrString(decimal, "Decimal");
    InvalidOperation = PyObject_GetAttrString(decimal, "InvalidOperation");
    Py_DECREF(decimal);
    if (Decimal == NULL || InvalidOperation == NULL)
        return NULL;
    ZERO = PyObject_CallFunction(Decimal, "i", 0);
    INFINITY_ = PyObject_CallFunction(Decimal, "s", "Infinity");
    s_pcache = PyUnicode_InternFromString("pcache");
    s_keys = PyUnicode_InternFromString("keys");
    s_levels = PyUnicode_InternFromString("levels");
    s_prices = PyUnicode_InternFromString("prices");
    s_dirty = PyUnicode_InternFromString("dirty");
    s_tops = PyUnicode_InternFromString("tops");
    s_top_worst = PyUnicode_InternFromString("top_worst");
    if (!(ZERO && INFINITY_ && s_pcache && s_keys && s_levels && s_prices && s_dirty && s_tops && s_top_worst))
        return NULL;
    return PyModule_Create(&module_def);
}
