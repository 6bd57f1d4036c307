# `make demo` and `make test` set everything up from nothing: a .venv with the package installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[serve,dev]'
	touch $(STAMP)

# The bundled model's ONNX graphs (faster CPU inference: visual.onnx, decoder_prefill.onnx,
# decoder_step.onnx, written together) are derived from its weights, not committed.
ONNX := models/default/visual.onnx

$(ONNX): $(STAMP) models/default/model.safetensors src/personvlm/models/onnx_graphs.py \
		src/personvlm/models/onnx_visual.py src/personvlm/models/onnx_decoder.py \
		src/personvlm/models/encoders.py src/personvlm/models/visual_tokens.py
	$(VENV)/bin/personvlm model export-onnx models/default

lint: $(STAMP)
	$(PY) -m ruff check src tests

test: $(STAMP) $(ONNX) lint
	$(PY) -m pytest -q

demo: $(STAMP) $(ONNX)
	$(VENV)/bin/personvlm demo

clean:
	rm -rf $(VENV) models/default/*.onnx build *.egg-info .pytest_cache .ruff_cache demo_results.html
