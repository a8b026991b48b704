"""Where an SMB path name lands on disk, or None when it would leave its share.

impacket compares string prefixes (os.path.commonprefix), so a share `/x/share` lets
`..\\share2\\f` through to the sibling `/x/share2`. Here the name is resolved the way
the kernel will open it — every symlink followed (os.path.realpath) — and must stay
inside the share's own resolved directory by whole path components (os.path.commonpath).
Absolute names, drive letters, alternate data streams (`name:stream`) and NUL are refused
before anything touches the disk. Pure apart from realpath's reads of the file system.
"""

import os
import re

_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve(root: str, name: str) -> str | None:
    """The real path that SMB name `name` (relative to share `root`) opens, or None.

    A single leading separator is how clients write share-relative names (`\\dir\\f`);
    any other absolute form (`\\\\host\\share`, `/etc`, `C:\\`) is refused.
    """
    if "\x00" in name or ":" in name or _DRIVE.match(name):
        return None
    relative = name.replace("\\", "/")
    if relative.startswith("/"):
        relative = relative[1:]
    if relative.startswith("/"):
        return None  # "\\\\server\\share\\…" or "//…": a UNC path, never share-relative
    base = os.path.realpath(root)
    target = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath((base, target)) != base:
        return None
    return target


def is_pattern(name: str) -> bool:
    """Whether a directory search pattern is one name component (MS-SMB2 2.2.33): any
    separator would let it walk out of the directory being listed."""
    return bool(name) and not any(c in name for c in "\\/:\x00") and name != ".."
