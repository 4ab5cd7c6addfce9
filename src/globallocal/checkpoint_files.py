"""What a file handed over as a checkpoint is, from its first bytes, before torch is imported.

``torch.save`` writes a zip archive holding ``<name>/data.pkl`` (or, before PyTorch 1.6, a bare pickle
starting with byte 0x80). Anything else (a params.yaml, a PNG, an empty file) is told apart here in
milliseconds, with a message that names what the file looks like, instead of after the seconds torch
takes to import and a pickle error that reads like damage.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from globallocal.errors import UserError

#: What to do about a file the user named on the command line: never delete it on our advice.
USER_FILE_REMEDY = (
    "pass a checkpoint written by this pipeline's training stages (models/*.pt) or an ADVENT DeepLab-v2 "
    "state dict (.pth)"
)

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL_OPCODE = b"\x80"
#: First bytes of files people pass by mistake, and what to call them in a message.
_KNOWN_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)
_SNIFF_BYTES = 512


def describe_non_checkpoint(head: bytes) -> str | None:
    """What ``head`` (a file's first bytes) shows the file to be, or None if it may be a checkpoint."""
    if head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_PROTOCOL_OPCODE):
        return None
    for magic, kind in _KNOWN_MAGIC:
        if head.startswith(magic):
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a PyTorch file (it starts with neither a zip nor a pickle header)"
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "a text file (JSON?)"
    if ":" in stripped.split("\n", 1)[0] or stripped.startswith(("#", "---")):
        return "a text file (YAML?)"
    return "a text file"


def check_checkpoint_file(path: Path, remedy: str = USER_FILE_REMEDY) -> None:
    """Raise a UserError if ``path`` is missing, empty, or plainly not a torch.save file.

    ``remedy`` ends each message: what the owner of the file should do (a user's file is never to be
    deleted on our advice).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder, not a file; {remedy}")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; check the path, or {remedy}")
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        raise UserError(
            f"checkpoint {path} is empty (0 bytes): a copy or download that did not finish? {remedy}"
        )
    kind = describe_non_checkpoint(head)
    if kind is not None:
        raise UserError(f"{path} is not a PyTorch checkpoint: it is {kind}; {remedy}")
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise UserError(
                f"checkpoint {path} is cut short (its zip archive has no directory: a copy that did not "
                f"finish?); {remedy}"
            ) from None
        if not any(name.endswith("data.pkl") for name in names):
            raise UserError(f"{path} is not a PyTorch checkpoint: it is a zip archive without data.pkl; {remedy}")
