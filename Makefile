# Two commands for a fresh machine (see README.md):
#   make demo   install into .venv, write demo/sample.jpg and convert it to demo/sample.dng
#   make test   install into .venv, run the whole test suite and the linter

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The install is redone only when pyproject.toml changes (or the stamp is removed).
STAMP := $(VENV)/.rawback-installed

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# Always re-made (about a second), so the demo shows what the current code writes.
demo: $(STAMP)
	@mkdir -p demo
	$(BIN)/rawback sample demo/sample.jpg --overwrite
	$(BIN)/rawback convert demo/sample.jpg -o demo/sample.dng --overwrite --verbose
	@echo
	@echo "Wrote $(CURDIR)/demo/sample.dng from demo/sample.jpg. Open it with:"
	@echo "  darktable demo/sample.dng"
	@echo "  rawtherapee demo/sample.dng"
	@echo "  $(BIN)/python -c \"import rawpy, PIL.Image; PIL.Image.fromarray(rawpy.imread('demo/sample.dng').postprocess(use_camera_wb=True)).save('demo/render.png')\""

# Any non-zero pytest status fails the target, including 5 ("no tests were collected").
# -ra lists why tests were skipped, under pytest's summary line.
test: $(STAMP)
	$(BIN)/python -m pytest -ra
	$(BIN)/ruff check .

clean:
	rm -rf demo $(STAMP)
