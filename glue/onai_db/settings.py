"""Configuration from the environment and an optional ``.env`` file.

Every setting has one canonical name (``ONAI_DB_*`` or the provider's usual name) and
accepts the names the legacy backend used (see ``../shared/seeds``), so an existing
``backend/.env`` works unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

from .errors import ConfigError

# canonical name -> accepted aliases, first match wins
ALIASES: dict[str, tuple[str, ...]] = {
    "ONAI_DB_URL": ("TRAFFIC_DB_URL", "DATABASE_URL", "SUPABASE_DB_URL"),
    "LANDING_DB_URL": ("ONAI_DB_LANDING_URL",),
    "SUPABASE_SERVICE_ROLE_KEY": ("SUPABASE_KEY",),
    # outbox worker: the legacy backend's bot names (MENTOR_BOT / ADMIN_BOT / LEADS_BOT)
    "TELEGRAM_LEADS_BOT_TOKEN": ("LEADS_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
    "TELEGRAM_ADMIN_BOT_TOKEN": ("ADMIN_BOT_TOKEN",),
    "TELEGRAM_MENTOR_BOT_TOKEN": ("MENTOR_BOT_TOKEN",),
}


def find_project_dir(start: Path | None = None) -> Path:
    """The checkout root: the nearest directory holding ``supabase/config.toml``."""
    env = os.environ.get("ONAI_DB_PROJECT_DIR")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "supabase" / "config.toml").is_file():
            return candidate
    # installed package used from elsewhere: fall back to the source checkout
    pkg_root = Path(__file__).resolve().parents[2]
    if (pkg_root / "supabase" / "config.toml").is_file():
        return pkg_root
    raise ConfigError(
        "cannot find the onai-db checkout (no supabase/config.toml here or above); "
        "run from the repository or set ONAI_DB_PROJECT_DIR"
    )


def load_env(project_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Process environment over ``.env``: a variable set in the process wins; one exported
    empty or only blanks is unset (``is_set``) and leaves ``.env``'s value (found by review:
    ``TRAFFIC_DB_URL=`` in the shell hid .env's, and a run went to the local stack)."""
    values: dict[str, str] = {}
    if project_dir is not None:
        env_file = project_dir / ".env"
        if env_file.is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    process = os.environ if environ is None else environ
    values.update({k: v for k, v in process.items() if is_set(v) or k not in values})
    return values


def is_set(value: str | None) -> bool:
    """Whether a variable holds a value: empty or only blanks is unset (found by review:
    ``ONAI_DB_URL="   "`` connected to localhost instead of naming the setting)."""
    return bool(value and value.strip())


def lookup(env: Mapping[str, str], name: str, aliases: Sequence[str] | None = None) -> str | None:
    """The first value among ``name`` and its aliases that is set (``is_set``)."""
    for key in (name, *(ALIASES.get(name, ()) if aliases is None else aliases)):
        value = env.get(key)
        if is_set(value):
            return value
    return None


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one invocation."""

    project_dir: Path
    env: Mapping[str, str]
    # the process environment alone: any of a setting's names set there beats every name in
    # .env (an exported TRAFFIC_DB_URL beat by .env's ONAI_DB_URL pointed a run elsewhere)
    process: Mapping[str, str] | None = None

    @classmethod
    def load(cls, project_dir: Path | None = None) -> Settings:
        root = project_dir or find_project_dir()
        return cls(project_dir=root, env=load_env(root), process=dict(os.environ))

    def get(self, name: str, default: str | None = None) -> str | None:
        value = lookup(self.process, name) if self.process is not None else None
        if value is None:
            value = lookup(self.env, name)
        return value if value is not None else default

    def origin(self, name: str) -> str | None:
        """Which of a setting's names gave its value, and from where, as ``get`` picks it:
        "DATABASE_URL in the environment", "TRAFFIC_DB_URL in .env"; None when unset."""
        names = (name, *ALIASES.get(name, ()))
        if self.process is not None:
            key = next((k for k in names if is_set(self.process.get(k))), None)
            if key is not None:
                return f"{key} in the environment"
        key = next((k for k in names if is_set(self.env.get(k))), None)
        if key is None:
            return None
        return f"{key} in the environment" if self.process is None else f"{key} in .env"

    def require(self, name: str, hint: str = "") -> str:
        value = self.get(name)
        if value is None:
            names = ", ".join((name, *ALIASES.get(name, ())))
            raise ConfigError(f"{name} is not set (accepted names: {names}){'; ' + hint if hint else ''}")
        return value

    def integer(self, name: str) -> int | None:
        """An integer setting (AmoCRM ids, ...); anything else is a ConfigError naming it."""
        value = self.get(name)
        if value is None:
            return None
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, got {value!r}") from None

    def supabase_project(self) -> tuple[str | None, str | None]:
        """URL and service-role key of the Supabase project holding this database, as a pair.

        onai-db's database is the Traffic project. In the seeds' ``backend/.env`` the plain
        ``SUPABASE_URL`` / ``SUPABASE_SERVICE_ROLE_KEY`` name the *Main* platform project, so
        ``TRAFFIC_SUPABASE_URL`` (with ``TRAFFIC_SERVICE_ROLE_KEY``) wins when it is set; a URL
        of one project is never paired with the key of another."""
        if traffic := self.get("TRAFFIC_SUPABASE_URL"):
            return traffic, self.get("TRAFFIC_SERVICE_ROLE_KEY")
        return self.get("SUPABASE_URL"), self.get("SUPABASE_SERVICE_ROLE_KEY")

    @property
    def local_dir(self) -> Path:
        return Path(self.get("ONAI_DB_LOCAL_DIR") or self.project_dir / ".local")
