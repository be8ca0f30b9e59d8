"""The annotation service for people: batches, the durable store (SQLite or PostgreSQL), the web
app and its page, the server, ``PeopleAnnotator`` (people behind the ``Annotator`` protocol) and
the Label Studio / MTurk file exchange."""
