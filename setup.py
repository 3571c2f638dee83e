from setuptools import find_packages, setup

setup(
    name="reverse-etl",
    version="0.1.0",
    description="Self-hosted reverse ETL on Dagster: MySQL rows → Customer.io / Segment calls",
    packages=find_packages(exclude=["reverse_etl_tests", "reverse_etl_tests.*"]),
    package_data={"reverse_etl_assets": ["demo/*.yaml", "demo/*.sqlite", "defs/*.yaml", "delivery/*.json"]},
    python_requires=">=3.11",
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        # `reverse-etl dev` asks the running webserver to reload the definitions (its public client).
        "dagster-graphql>=1.13,<1.14",
        "sqlalchemy>=2.0",
        "pymysql>=1.1",
        # MySQL 8's default authentication (caching_sha2_password) needs it with PyMySQL.
        "cryptography>=42",
        "pyarrow>=17",
        "requests>=2.32",
        "urllib3>=2",  # the HTTP transport: its connection pool, without requests' session on top
        "pydantic>=2.7",
        "pyyaml>=6",
        # Cron expressions: validating a sync's `frequency` and the gaps between its ticks (Dagster's
        # own copy of croniter is not public API).
        "croniter>=6",
        "click>=8.1",  # the reverse-etl command
        "tabulate>=0.9",  # its tables
        # Fast, exact JSON: bytes out, and orjson.Fragment writes DECIMAL digits as they are.
        "orjson>=3.10",
        # Retries with exponential backoff and jitter, and a custom wait for Retry-After.
        "tenacity>=9.1",
        # Message ids: XXH3-128, a few times faster per call than SHA-1 (hashlib), and stable across
        # versions and machines, as a deduplication id must be.
        "xxhash>=3.4",
        # Views of Arrow's buffers (pyarrow needs it anyway): packing requests, escaping checks.
        "numpy>=1.26",
        # The preview checks calls against the destination's published JSON schemas (OpenAPI 3.1);
        # rfc3339-validator lets it check `format: date-time`.
        "jsonschema>=4.22",
        "rfc3339-validator>=0.1.4",
    ],
    extras_require={
        # The fast drivers. mysqlclient is C and compiles against libmariadb-dev (or
        # libmysqlclient-dev) and pkg-config; ConnectorX (Rust, a binary wheel) reads rows straight
        # into Arrow, without Python per row: what the fast path needs and nothing hand-written does.
        "fast": ["mysqlclient>=2.2", "connectorx>=0.4.6,<0.5"],
        # An instance on PostgreSQL (its runs, cursors and the state store every worker shares),
        # through psycopg2, which dagster-postgres is written for (its NOTIFY fails on psycopg 3):
        # SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, so URLs say `postgresql+psycopg2`.
        "postgres": ["dagster-postgres>=0.29,<0.30", "psycopg2-binary>=2.9"],
        # Sync runs' steps on Celery workers (`executor: {kind: celery}`).
        "celery": ["dagster-celery>=0.29,<0.30"],
        # The peers measured by bench/run_benchmarks.py.
        "bench": ["customerio-cdp-analytics>=1.1", "dlt[sql_database]>=1.31"],
        "dev": [
            "mysqlclient>=2.2",  # the tests compare every driver
            "connectorx>=0.4.6,<0.5",
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",  # the payload fidelity oracle's generated tables
            # Drives the system's Chromium (never downloads a browser) for the UI test.
            "playwright>=1.40",
            "ruff>=0.6",
            # The tests run instances on PostgreSQL.
            "dagster-postgres>=0.29,<0.30",
            "psycopg2-binary>=2.9",
            "dagster-celery>=0.29,<0.30",  # and on two Celery workers
            "dagster-dg-cli>=1.13,<1.14",  # `dg check defs`, `dg list defs`, `dg dev`: the dg project
        ],
    },
    entry_points={
        "console_scripts": ["reverse-etl=reverse_etl_assets.cli:main"],
        # `dg list components` and a dg project's defs.yaml find ReverseEtlComponent through it.
        "dagster_dg_cli.registry_modules": ["reverse_etl_assets = reverse_etl_assets.component"],
    },
)
