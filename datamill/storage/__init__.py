"""The only package that knows SQL: schema, migrations, repositories, leasing and blobs."""
