"""A fake of the few PySpark objects that examples/*.py touch (tests/it_examples.sh).

Spark cannot be installed here. This package stands in for it on sys.path: the classes and
methods the examples call, with the behaviour of PySpark 3.4+/4.x that matters to them, and
nothing else (anything else is an AttributeError, as a typo would be in Spark). The state of
the fake "cluster" (the batches a query will run, the Iceberg tables) is in pyspark._fake.
"""
__version__ = "3.5.1+fake"
