"""A second retrieval corpus, from a different source and domain than the Python docs: Debian's man pages.

The pages of common command-line packages (coreutils, findutils, grep, sed, tar, gzip, procps, ssh...)
as this machine has them under /usr/share/man, rendered to plain text with `man` — about 300 files, a few
thousand chunks. Built at run time (nothing is committed but this script and the questions). Aliases
(symlinks and `.so` redirects) and pages whose text repeats another's are left out; a question scores
on any of the pages it names.

The questions are what a Linux user would ask, most of them paraphrased (the command's name is not in
the question), with the man pages that answer them.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PACKAGES = (
    "coreutils", "findutils", "grep", "sed", "tar", "gzip", "diffutils", "util-linux", "procps", "bsdutils", "bzip2",
    "xz-utils", "less", "openssh-client", "curl", "wget", "make", "zip", "unzip", "file", "psmisc", "man-db", "net-tools",
)  # fmt: skip
MAN = Path("/usr/share/man")

# (question, man pages that answer it, "kw" when it names the command or option, "para" when it paraphrases)
QUESTIONS: list[tuple[str, tuple[str, ...], str]] = [
    ("How do I count the lines in a file?", ("wc.1",), "para"),
    ("How do I show only the first ten lines of a file?", ("head.1",), "para"),
    ("How do I keep watching a log file as new lines are appended?", ("tail.1",), "para"),
    ("How do I sort lines numerically instead of alphabetically?", ("sort.1",), "para"),
    ("How do I drop repeated adjacent lines and count how often each occurs?", ("uniq.1",), "para"),
    ("How do I print just the second column of a comma-separated file?", ("cut.1",), "para"),
    ("How do I translate lowercase letters to uppercase in a stream?", ("tr.1",), "para"),
    ("How much disk space is left on each mounted filesystem?", ("df.1",), "para"),
    ("How do I find out how much space a directory takes up?", ("du.1",), "para"),
    ("How do I make a file executable for its owner?", ("chmod.1",), "para"),
    ("How do I change which user owns a file?", ("chown.1",), "para"),
    ("How do I create a symbolic link to a file?", ("ln.1",), "para"),
    ("How do I create nested directories in one go, including missing parents?", ("mkdir.1",), "para"),
    ("How do I securely overwrite a file so its contents cannot be recovered?", ("shred.1",), "para"),
    ("How do I run a command and kill it if it takes longer than a given time?", ("timeout.1",), "para"),
    ("How do I keep a program running after I log out of the terminal?", ("nohup.1",), "para"),
    ("How do I verify a download against its SHA-256 checksum?", ("sha256sum.1",), "para"),
    ("How do I print a sequence of numbers from 1 to 10?", ("seq.1",), "para"),
    ("How do I shuffle the lines of a file into a random order?", ("shuf.1",), "para"),
    ("How do I split a big file into pieces of 100 megabytes each?", ("split.1",), "para"),
    ("How do I copy a disk image to a USB stick byte for byte?", ("dd.1",), "para"),
    ("How do I print the current date in ISO 8601 format?", ("date.1",), "para"),
    ("How do I show the lines two files have in common when both are sorted?", ("comm.1",), "para"),
    ("How do I write output both to the screen and to a file?", ("tee.1",), "para"),
    ("How do I search all files under a directory for a word, recursively?", ("grep.1",), "para"),
    ("How do I show the lines that do not match a pattern?", ("grep.1",), "para"),
    ("How do I replace every occurrence of a word in a file in place?", ("sed.1",), "para"),
    ("How do I find files modified in the last seven days?", ("find.1",), "para"),
    ("How do I run a command on every file name read from standard input?", ("xargs.1",), "para"),
    ("How do I pack a directory into a gzip-compressed archive?", ("tar.1",), "para"),
    ("How do I list what is inside an archive without extracting it?", ("tar.1", "unzip.1", "zipinfo.1"), "para"),
    ("How do I compress a file with the best compression ratio, at the slowest speed?", ("gzip.1", "xz.1", "bzip2.1"), "para"),
    ("How do I compare two files and print the differences as a unified patch?", ("diff.1",), "para"),
    ("How do I see every running process with its owner and command line?", ("ps.1",), "para"),
    ("How do I find the process id of a program by its name?", ("pgrep.1",), "para"),
    ("How do I stop all processes with a given name?", ("killall.1", "pgrep.1"), "para"),
    ("How do I see how much memory is free and how much swap is in use?", ("free.1",), "para"),
    ("How long has the machine been running since the last boot, and what is the load average?", ("uptime.1", "w.1"), "para"),
    ("How do I lower the priority of a process that is already running?", ("renice.1",), "para"),
    ("How do I rerun a command every two seconds and watch its output change?", ("watch.1",), "para"),
    ("How do I see the processes as a tree of parents and children?", ("pstree.1",), "para"),
    ("Which process is holding a file or a network port open?", ("fuser.1",), "para"),
    ("How do I log in to a remote machine through a jump host?", ("ssh.1",), "para"),
    ("How do I generate a new key pair for passwordless login?", ("ssh-keygen.1",), "para"),
    ("How do I install my public key on a server so I can log in without a password?", ("ssh-copy-id.1",), "para"),
    ("How do I copy a file to a remote host over an encrypted connection?", ("scp.1", "sftp.1"), "para"),
    ("How do I forward a local port to a service on a remote network?", ("ssh.1",), "para"),
    ("How do I resume a partially downloaded file?", ("wget.1", "curl.1"), "para"),
    ("How do I send a POST request with a JSON body from the command line?", ("curl.1",), "para"),
    ("How do I find out what kind of data a file contains, regardless of its extension?", ("file.1",), "para"),
    ("How do I list block devices such as disks and their partitions?", ("lsblk.8",), "para"),
    ("How do I show information about the CPU architecture and number of cores?", ("lscpu.1", "nproc.1"), "para"),
    ("How do I read the kernel's ring buffer messages?", ("dmesg.1",), "para"),
    ("How do I search the manual page descriptions for a keyword?", ("apropos.1", "man.1"), "para"),
    ("How do I scroll backwards through a long output in a pager?", ("less.1", "more.1"), "para"),
    ("What does make -j do?", ("make.1",), "kw"),
    ("What does ls -lh print?", ("ls.1",), "kw"),
    ("What does rm -rf do?", ("rm.1",), "kw"),
    ("What is the -p option of cp for?", ("cp.1",), "kw"),
    ("How does mv --backup work?", ("mv.1",), "kw"),
    ("What does grep -E change?", ("grep.1",), "kw"),
    ("What does sort -k select?", ("sort.1",), "kw"),
    ("What does tar --exclude do?", ("tar.1",), "kw"),
    ("What does the -z option of tar do?", ("tar.1",), "kw"),
    ("What does ssh-agent do?", ("ssh-agent.1",), "kw"),
    ("What does kill -9 send?", ("kill.1",), "kw"),
    ("What does stat --format print?", ("stat.1",), "kw"),
    ("How does touch -d set a timestamp?", ("touch.1",), "kw"),
    ("What does env -i do?", ("env.1",), "kw"),
    ("What does find -exec do?", ("find.1",), "kw"),
    ("What does xargs -0 expect?", ("xargs.1",), "kw"),
    ("What does top show in its summary area?", ("top.1",), "kw"),
    ("What does netstat -tulpn list?", ("netstat.8",), "kw"),
    ("How does numfmt --to=iec format numbers?", ("numfmt.1",), "kw"),
    ("What does readlink -f resolve?", ("readlink.1", "realpath.1"), "kw"),
]


def page_files() -> list[Path]:
    """The packages' man1/man8 pages on this machine, aliases left out."""
    listed = subprocess.run(["dpkg", "-L", *PACKAGES], capture_output=True, text=True, check=False).stdout
    pages = []
    for line in sorted(set(listed.splitlines())):
        path = Path(line)
        if path.parent.parent != MAN or path.parent.name not in ("man1", "man8") or path.suffix != ".gz":
            continue
        if path.is_symlink() or not path.is_file():
            continue
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
            if fh.read(200).lstrip().startswith(".so "):
                continue
        pages.append(path)
    return pages


def _render(path: Path) -> str:
    env = {**os.environ, "MANWIDTH": "90", "MAN_KEEP_FORMATTING": "0"}
    out = subprocess.run(
        ["man", "-E", "UTF-8", "--nh", "--nj", "-l", str(path)], capture_output=True, text=True, env=env, check=False
    ).stdout
    return subprocess.run(["col", "-bx"], input=out, capture_output=True, text=True, check=False).stdout


def write_corpus(folder: Path) -> list[str]:
    """Each page as NAME.txt (wc.1.txt) under folder; the names written."""
    if shutil.which("man") is None or not MAN.is_dir():
        raise SystemExit("the man-page corpus needs `man` and /usr/share/man")
    folder.mkdir(parents=True, exist_ok=True)
    pages = page_files()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        texts = list(pool.map(_render, pages))
    written, seen = [], set()
    for path, text in zip(pages, texts):
        digest = hashlib.sha256(text.split("\n", 1)[-1].encode()).hexdigest()
        if len(text) < 200 or digest in seen:
            continue
        seen.add(digest)
        name = path.name.removesuffix(".gz")
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        written.append(name)
    return written
