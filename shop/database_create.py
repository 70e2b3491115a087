"""`python -m shop.database_create`: create the PostgreSQL database DATABASE_URL names if it is missing (make run)."""

import os
import sys

import environ
import psycopg
from psycopg import sql


def database_create(*, url: str) -> bool:
    """Create the PostgreSQL database `url` names unless it exists; True when it was created."""
    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        return False
    connect = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    # CREATE DATABASE cannot run inside the target database, so go through the maintenance one.
    with psycopg.connect(dbname="postgres", autocommit=True, **connect) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            return False
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
        return True


if __name__ == "__main__":
    url = os.environ.get("DATABASE_URL", "")
    if url and database_create(url=url):
        print(f"Created database {environ.Env.db_url_config(url)['NAME']}", file=sys.stderr)
