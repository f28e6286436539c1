"""Text generation backends shared by augmentation and evaluation: the `Generator`
interface (base), a local HF model (local), an OpenAI-compatible HTTP client (http_client),
the on-disk completion cache (cache), `make_generator` (factory), GGUF conversion (gguf) and
`instructmix serve` (serve, llama.cpp)."""
