"""OSIS, the Object Storage and Indexing System: the one place the appliance keeps state.

Domain objects are defined once in `domain.thrift`, serialized with Thrift inside a
verified frame (`codec`), stored in a key/value store (`kv`: SQLite or etcd) and indexed
in SQL views (`views`: SQLite or PostgreSQL). `store.ObjectStore` ties them together.
"""
