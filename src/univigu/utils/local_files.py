# Copyright 2026 The univigu authors. Licensed under the Apache License, Version 2.0.
"""The one check every video path goes through before a decoder opens it (issue #29, item 5): only local video files
are read. A network URL (http, https, rtmp, ...: anything FFmpeg would take as a protocol) and a file whose contents
make FFmpeg open other files or URLs (an HLS/M3U playlist, an ffconcat list, a DASH manifest, an SDP description,
whatever its name: the first bytes are sniffed) are refused with a message naming the path and the opt-in, so that a
file inside a data folder cannot pull in files outside it or make requests.

The opt-in: `allow_remote=True` where a function takes it (`univigu.data.read_video`, the pipeline's
`allow_remote_video` attribute), or the environment variable `UNIVIGU_ALLOW_REMOTE_VIDEO=1` for a whole process.

Standard library only and no univigu import: `univigu/pipelines/local_files.py` is a link to this file, the sibling
through which the pipeline's `video_input.py` reads it (pipeline module files never import univigu).
"""

import os
import re


#: Set to 1 (or true/yes) to let every reader in the process open URLs and playlists.
ALLOW_REMOTE_ENV = "UNIVIGU_ALLOW_REMOTE_VIDEO"
#: How many bytes of a file are read to recognise a playlist.
SNIFF_BYTES = 4096
#: Names FFmpeg (or imageio/PIL) reads as lists of other files or streams.
PLAYLIST_SUFFIXES = (".m3u8", ".m3u", ".ffconcat", ".concat", ".mpd", ".sdp", ".f4m", ".ism", ".isml", ".pls",
                     ".xspf", ".avs", ".vpy")
#: A URL or FFmpeg protocol prefix (`https:`, `rtmp:`, `concat:`, `subfile,`...); one letter is a Windows drive.
_SCHEME = re.compile(r"^(subfile)(,)|^([A-Za-z][A-Za-z0-9+.\-]+)(:)")
#: First bytes (after a BOM and white space) of the text formats that name other files or URLs, and what they are.
_SIGNATURES = (
    (b"#EXTM3U", "an HLS/M3U playlist"),
    (b"#EXT-X-", "an HLS playlist"),
    (b"ffconcat version", "an ffconcat list"),
    (b"v=0", "an SDP session description (RTP streams)"),
)
#: Lines of a text file that point elsewhere: a URL, or a concat `file` directive.
_REFERENCE_LINE = re.compile(rb"^\s*(?:[A-Za-z][A-Za-z0-9+.\-]+://|file\s+\S)", re.MULTILINE)


class NotALocalVideoError(ValueError):
    """A video path that is a URL or a playlist, refused because remote reading was not allowed."""


def remote_video_allowed(allow_remote: bool | None = None) -> bool:
    """`allow_remote` when given, else whether `UNIVIGU_ALLOW_REMOTE_VIDEO` is set to 1/true/yes."""
    if allow_remote is not None:
        return bool(allow_remote)
    return os.environ.get(ALLOW_REMOTE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_url(path: str) -> bool:
    """Whether `path` names a URL or an FFmpeg protocol rather than a file (`https://...`, `concat:...`)."""
    return bool(_SCHEME.match(path))


def _opt_in(where: str) -> str:
    return (f"Only local video files are read. Download it and pass the local file ({where}), or, if you mean it, "
            f"allow remote reading (allow_remote=True / pipe.allow_remote_video = True, or {ALLOW_REMOTE_ENV}=1).")


def sniff_playlist(head: bytes) -> str | None:
    """What the first bytes of a file are when they are a format that makes a decoder open other files or URLs (an
    HLS playlist, an ffconcat list, a DASH manifest, an SDP description, a text list of URLs), else None."""
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    for signature, kind in _SIGNATURES:
        if text.startswith(signature):
            return kind
    if b"\0" in head:
        return None  # binary: a real container
    if text.startswith(b"<") and b"<MPD" in text:
        return "a DASH manifest"
    if _REFERENCE_LINE.search(text):
        return "a text file that lists other files or URLs"
    return None


def check_video_bytes(data: bytes | bytearray, name: str = "the video bytes",
                      allow_remote: bool | None = None) -> None:
    """Refuse encoded video bytes that are a playlist (see `sniff_playlist`) unless remote reading is allowed."""
    if remote_video_allowed(allow_remote):
        return
    kind = sniff_playlist(bytes(data[:SNIFF_BYTES]))
    if kind is not None:
        raise NotALocalVideoError(
            f"{name} is {kind}, not a video: it would make the decoder open other files or URLs. "
            + _opt_in("the video itself, e.g. mp4")
        )


def check_local_video(path: str | os.PathLike, allow_remote: bool | None = None) -> str:
    """The path to hand to a decoder for `path`, after refusing what is not a local video file.

    Refused unless remote reading is allowed (`remote_video_allowed`): a URL or FFmpeg protocol (`https://...`,
    `rtmp://...`, `concat:a|b`, ...) and a file whose name or first bytes make it a playlist (`.m3u8`, an `.mp4`
    holding an HLS playlist, ...). An existing local file is returned as an absolute path, so that a name such as
    `concat:x.mp4` is read as that file and never as a protocol. A path that does not exist is returned unchanged
    (the caller says it is missing)."""
    path = os.fspath(path)
    allowed = remote_video_allowed(allow_remote)
    if not os.path.isfile(path):
        scheme = _SCHEME.match(path)
        if scheme and not allowed:
            raise NotALocalVideoError(f"The video {path!r} is a URL or stream ({scheme.group(0)}...). "
                                      + _opt_in("e.g. mp4"))
        return path
    if allowed:
        return path
    if path.lower().endswith(PLAYLIST_SUFFIXES):
        raise NotALocalVideoError(
            f"The video file {path!r} is a playlist or stream description ({os.path.splitext(path)[1]}), not a "
            "video: it would make the decoder open other files or URLs. " + _opt_in("e.g. mp4")
        )
    with open(path, "rb") as f:
        check_video_bytes(f.read(SNIFF_BYTES), name=f"The video file {path!r}", allow_remote=False)
    return os.path.abspath(path)


__all__ = [
    "ALLOW_REMOTE_ENV",
    "NotALocalVideoError",
    "check_local_video",
    "check_video_bytes",
    "looks_like_url",
    "remote_video_allowed",
    "sniff_playlist",
]
