"""Online search, what the service calls: the search engine (``engine``), query generation
(``querygen``), garment regions of a look (``regions``), rerank, the LLM client and the cache."""
