"""OCI images: a content store of blobs addressed by digest, an index of names in the state store,
and a registry client (OCI distribution spec). Host-independent: nothing here runs or unpacks."""
