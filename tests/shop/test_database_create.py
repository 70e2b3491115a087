"""make run creates the PostgreSQL database DATABASE_URL names when a fresh machine lacks it."""

import uuid

import psycopg

from shop.database_create import database_create

MAINTENANCE = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_exists(name: str) -> bool:
    with psycopg.connect(MAINTENANCE, autocommit=True) as connection:
        return connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def test_a_missing_database_is_created_once_and_an_existing_one_left_alone():
    # given a database name that does not exist
    name = f"shop_fresh_{uuid.uuid4().hex[:12]}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    assert not database_exists(name)
    try:
        # when the creation step runs twice
        created = [database_create(url=url), database_create(url=url)]
        # then the first run creates it and the second finds it there
        assert created == [True, False]
        assert database_exists(name)
    finally:
        with psycopg.connect(MAINTENANCE, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_a_sqlite_url_is_not_touched():
    assert database_create(url="sqlite:///db.sqlite3") is False
