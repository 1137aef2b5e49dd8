"""Read ``torch.save`` files without unpickling arbitrary code: tensors come back as numpy views.

``torch.save`` writes a zip archive: ``<name>/data.pkl`` (a pickle whose tensors refer to storages
by key through persistent ids) and one uncompressed entry ``<name>/data/<key>`` per storage. This
reader unpickles ``data.pkl`` with an allow-list (containers, ``torch._utils._rebuild_tensor_v2``,
the typed storage classes, ``collections.OrderedDict``, ``torch.Size``) and maps each storage
straight from the memory-mapped file, so a tensor becomes a zero-copy ``np.ndarray`` view. It is
several times faster than ``torch.load`` on files with thousands of small tensors (SGLang's
per-pass dumps hold one tensor per forward pass) and never imports torch.

Anything outside the allow-list (another global, a compressed entry, a dtype numpy lacks such as
bfloat16, a big-endian file, the legacy non-zip format) raises ``Unsupported``; ``load`` then falls
back to ``torch.load(weights_only=True)`` and converts tensors to numpy.

Every tensor view is checked before it is made, on both paths: offset and strides non-negative, its
last element inside its storage, and its size (elements x item size; a zero stride repeats one
element as often as the size says) within ``dodoco.config.allocation_limit`` (a hostile 10^12-element
view of one number would otherwise spin every reader that touches it).
"""

from __future__ import annotations

import collections
import io
import math
import mmap
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dodoco.config import allocation_limit
from dodoco.errors import DodocoError

__all__ = ["Unsupported", "load", "load_fast"]

_STORAGE_DTYPES = {
    "BoolStorage": np.bool_,
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "UInt16Storage": np.uint16,
    "UInt32Storage": np.uint32,
    "UInt64Storage": np.uint64,
}


class Unsupported(Exception):
    """The fast reader cannot read this file (the caller falls back to torch.load)."""


class _Storage:
    __slots__ = ("dtype", "itemsize")

    def __init__(self, dtype):
        self.dtype, self.itemsize = dtype, np.dtype(dtype).itemsize


def _size(*args):
    return tuple(*args)


class _Unpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` with an allow-list; storages become numpy views of ``buf`` right away."""

    def __init__(self, data: bytes, buf, offsets: dict, prefix: str, path=""):
        super().__init__(io.BytesIO(data))
        self.buf, self.offsets, self.prefix, self.path = buf, offsets, prefix, path
        self.storages: dict[str, np.ndarray] = {}
        self.layouts: dict[tuple, tuple] = {}  # size -> (numel, C-order strides)

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self.rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        if module == "torch" and name == "Size":
            return _size
        raise Unsupported(f"{module}.{name}")

    def persistent_load(self, pid):
        try:
            tag, kind, key, _, numel = pid
        except (TypeError, ValueError):
            raise Unsupported(f"persistent id {pid!r:.60}") from None
        if tag != "storage" or not isinstance(kind, _Storage):
            raise Unsupported(f"persistent id {pid!r:.60}")
        key = str(key)
        arr = self.storages.get(key)
        if not isinstance(numel, int) or numel < 0:
            raise Unsupported(f"storage {key} of {numel!r:.40} elements")
        if arr is None:
            start, size, _ = self.offsets.get(f"{self.prefix}data/{key}", (0, -1, 0))
            if size < numel * kind.itemsize:
                raise Unsupported(f"storage {key} missing, compressed or truncated")
            arr = self.storages[key] = np.frombuffer(self.buf, dtype=kind.dtype, count=numel, offset=start)
        return arr

    def rebuild_tensor(
        self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
    ):
        if not isinstance(storage, np.ndarray):
            raise Unsupported("tensor without a typed storage")
        size, off = tuple(size), int(storage_offset)
        if off < 0 or off >= max(1, storage.size):
            raise ValueError(f"tensor offset {off} is outside its storage of {storage.size} elements")
        if not size:
            return storage[off : off + 1].reshape(())
        layout = self.layouts.get(size)
        if layout is None:
            layout = self.layouts[size] = (math.prod(size), _c_strides(size))
        numel, c_strides = layout
        if tuple(stride) == c_strides and min(size) >= 0 and off + numel <= storage.size:
            return storage[off : off + numel].reshape(size)  # contiguous: a plain view (fast)
        check_view(size, stride, off, storage.size, storage.itemsize, self.path)
        return np.lib.stride_tricks.as_strided(
            storage[off:], shape=size, strides=[s * storage.itemsize for s in stride], writeable=False
        )


def check_view(size, stride, offset: int, storage: int, itemsize: int, path="") -> None:
    """Refuse a tensor view of ``size`` and ``stride`` (elements) at ``offset`` into a storage of
    ``storage`` elements before it is made: negative sizes or strides, a last element past the
    storage, or more bytes than ``allocation_limit()`` (DodocoError naming the file)."""
    size, stride = [int(n) for n in size], [int(s) for s in stride]
    if len(size) != len(stride) or min(size, default=0) < 0 or min(stride, default=0) < 0 or offset < 0:
        raise ValueError(f"tensor of size {size} and stride {stride} is malformed")
    numel = math.prod(size)
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if numel and last >= storage:
        raise ValueError(f"tensor of size {size} and stride {stride} reaches past its storage")
    if numel * itemsize > allocation_limit():
        raise DodocoError(
            f"{path}: a tensor of shape {size} (stride {stride}) would hold {numel} elements, more than "
            "half of this machine's memory: not an expert-load dump, or a damaged one"
        )


def _c_strides(size: tuple) -> tuple:
    out, acc = [], 1
    for n in reversed(size):
        out.append(acc)
        acc *= n
    return tuple(reversed(out))


_EOCD = struct.Struct("<IHHHHIIH")
_CDIR = struct.Struct("<IHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<IHHHHHIIIHH")


def _central_directory(buf) -> dict[str, tuple[int, int, int]] | None:
    """name -> (data offset, size; -1 if compressed, CRC-32) read straight from the zip's central directory;
    None for anything unusual (ZIP64, comments, spanning), where zipfile takes over."""
    end = len(buf) - _EOCD.size
    if end < 0 or buf[end : end + 4] != b"PK\x05\x06":
        return None
    _, disk, _, _, count, size, start, comment = _EOCD.unpack_from(buf, end)
    if disk or comment or count == 0xFFFF or start == 0xFFFFFFFF or start + size > end:
        return None
    out, pos = {}, start
    for _ in range(count):
        (sig, _, _, _, method, _, _, crc, csize, usize, n, m, k, _, _, _, local) = _CDIR.unpack_from(buf, pos)
        if sig != 0x02014B50 or 0xFFFFFFFF in (csize, usize, local):
            return None
        name = bytes(buf[pos + 46 : pos + 46 + n]).decode("utf-8", "replace")
        pos += 46 + n + m + k
        lsig, *_, ln, lm = _LOCAL.unpack_from(buf, local)
        if lsig != 0x04034B50:
            return None
        out[name] = (local + 30 + ln + lm, usize if method == 0 else -1, crc)
    return out


def _entry_offsets(zf: zipfile.ZipFile, buf) -> dict[str, tuple[int, int, int]]:
    """name -> (data offset, size; -1 if compressed, CRC-32) of each zip entry, through zipfile."""
    out = {}
    for info in zf.infolist():
        h = info.header_offset
        if bytes(buf[h : h + 4]) != b"PK\x03\x04":
            raise Unsupported("bad local header")
        n, m = struct.unpack("<HH", bytes(buf[h + 26 : h + 30]))
        out[info.filename] = (h + 30 + n + m, info.file_size if info.compress_type == 0 else -1, info.CRC)
    return out


def _offsets(path: Path, buf) -> dict[str, tuple[int, int, int]]:
    offsets = _central_directory(buf)
    if offsets is not None:
        return offsets
    try:
        with zipfile.ZipFile(path) as zf:
            return _entry_offsets(zf, buf)
    except zipfile.BadZipFile:
        raise Unsupported("not a zip archive") from None


def verify_crc(path, buf, offsets: dict) -> None:
    """Check every stored (uncompressed) member of the zip against its CRC-32 before any byte is used;
    DodocoError naming the file and member when one is damaged or cut short."""
    with memoryview(buf) as view:
        for name, (start, size, crc) in offsets.items():
            if size < 0:
                continue  # compressed: the fast reader refuses it, zipfile checks it in the fallback
            if start + size > len(view):
                raise DodocoError(f"{path} is truncated: member {name} ends past the end of the file; re-copy it")
            if zlib.crc32(view[start : start + size]) != crc:
                raise DodocoError(
                    f"{path} is damaged: member {name} fails its zip CRC-32 check; re-copy or re-dump the file"
                )


def _entry(buf, offsets: dict, name: str) -> bytes:
    start, size, _ = offsets[name]
    if size < 0:
        raise Unsupported(f"{name} is compressed")
    return bytes(buf[start : start + size])


def load_fast(path):
    """Load a torch.save zip file: tensors -> read-only numpy views of the memory-mapped file."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise Unsupported("empty file") from None
    offsets = _offsets(path, buf)
    verify_crc(path, buf, offsets)
    pkl = [n for n in offsets if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
        raise Unsupported("no data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    if prefix + "byteorder" in offsets and _entry(buf, offsets, prefix + "byteorder") != b"little":
        raise Unsupported("big-endian file")
    return _Unpickler(_entry(buf, offsets, pkl[0]), buf, offsets, prefix, path).load()


def stack(arrays) -> np.ndarray:
    """np.stack of same-shape arrays, without a copy when they are evenly spaced views of one buffer
    (consecutive tensors of a torch.save file are): one strided view over the memory map."""
    arrays = list(arrays)
    if len(arrays) < 2:
        return np.stack(arrays) if arrays else np.zeros((0,))
    first = arrays[0]
    addr = np.fromiter((a.__array_interface__["data"][0] for a in arrays), dtype=np.int64, count=len(arrays))
    step = addr[1] - addr[0]
    root = _root(first)
    if (
        step > 0
        and np.all(np.diff(addr) == step)
        and isinstance(root, mmap.mmap)
        and all(a.shape == first.shape and a.strides == first.strides and a.dtype == first.dtype for a in arrays)
        and all(_root(a) is root for a in (arrays[1], arrays[-1]))
    ):
        base = np.frombuffer(root, dtype=np.uint8)
        lo = base.__array_interface__["data"][0]
        span = addr[-1] - lo + first.nbytes
        if addr[0] >= lo and span <= base.size and first.flags.c_contiguous:
            return np.lib.stride_tricks.as_strided(
                first, shape=(len(arrays),) + first.shape, strides=(int(step),) + first.strides, writeable=False
            )
    return np.stack(arrays)


def _root(a):
    """The object owning an array's memory (follows ``.base`` through views and as_strided wrappers;
    a memoryview of a memory map resolves to the map)."""
    while getattr(a, "base", None) is not None:
        a = a.base
    return a.obj if isinstance(a, memoryview) else a


def _to_numpy(obj, path=""):
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.layout is not torch.strided:
            raise DodocoError(f"{path} holds a {obj.layout} tensor: save dense count tensors")
        if obj.numel():
            storage = obj.untyped_storage().nbytes() // max(1, obj.element_size())
            check_view(obj.shape, obj.stride(), obj.storage_offset(), storage, obj.element_size(), path)
        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _to_numpy(v, path)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_numpy(v, path) for v in obj)
    return obj


_BAD_FILE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    struct.error,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    OverflowError,
    UnicodeDecodeError,
    MemoryError,
)


def _check_zip(path) -> None:
    """Before torch.load: every member of a zip-format file against its CRC-32 (zipfile.testzip)."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile:
        return  # the legacy (non-zip) torch format carries no checksums; torch.load reads or refuses it
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError, struct.error) as exc:
        raise DodocoError(
            f"{path} is a damaged zip archive ({str(exc)[:120] or type(exc).__name__}); re-copy it"
        ) from None
    if bad is not None:
        raise DodocoError(f"{path} is damaged: member {bad} fails its zip CRC-32 check; re-copy or re-dump the file")


def load(path):
    """Load a ``.pt`` file safely: the fast reader, else ``torch.load(weights_only=True)``.

    Tensors come back as numpy arrays. A file torch cannot read safely raises DodocoError naming it.
    """
    try:
        return load_fast(path)
    except Unsupported:
        pass
    except _BAD_FILE as exc:
        raise DodocoError(
            f"{path} is not a readable torch file ({str(exc)[:120] or type(exc).__name__}); is it truncated?"
        ) from None
    _check_zip(path)
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for unreadable or unsafe pickles
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DodocoError(f"{path} cannot be loaded as a torch file with weights_only=True ({first[:160]})") from None
    try:
        return _to_numpy(obj, path)
    except ValueError as exc:
        raise DodocoError(f"{path} is not a readable torch file ({str(exc)[:160]})") from None
