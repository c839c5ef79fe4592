"""A throwaway PostgreSQL server for tests that stop and restart it (as `.ci/run` starts CI's own)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _binaries() -> Path | None:
    for folder in ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"))]:
        if os.access(f"{folder}/initdb", os.X_OK) and os.access(f"{folder}/pg_ctl", os.X_OK):
            return Path(folder)
    return None


class Postgres:
    """initdb in a fresh folder, then start/stop on a unix socket there (as nobody when run as root)."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
        self.bin = binaries
        # Not under pytest's tmp_path: its 0700 parents keep the nobody user out.
        self.folder = Path(tempfile.mkdtemp(prefix="gptbuilder-pg-"))
        self.folder.chmod(0o755)
        if os.getuid() == 0:
            shutil.chown(self.folder, "nobody")
        self._run("initdb", "-D", str(self.folder / "data"), "-U", "gptbuilder", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        """The server's URL, as GPTBUILDER_DATABASE_URL takes it."""
        return f"postgresql://gptbuilder@/postgres?host={self.folder}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-o", f"-k {self.folder} -c listen_addresses=''",
                  "-l", str(self.folder / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server at once, cutting its connections."""
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it if it runs and delete its folder."""
        subprocess.run(self._as_owner("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_owner(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin / program), *args]
        return ["runuser", "-u", "nobody", "--", *command] if os.getuid() == 0 else command

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(self._as_owner(program, *args), check=True, capture_output=True, timeout=120)
