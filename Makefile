# Peel developer commands. `make run` and `make test` work from a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.peel-installed
DEMO ?= demo-data

.PHONY: run test lint demo install clean-demo package

# Reinstall only when the dependency list changes (the stamp is newer than pyproject.toml).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(DEMO)/demo.json: | $(STAMP)
	$(VENV)/bin/peel demo-data $(DEMO)

demo: $(DEMO)/demo.json

run: $(STAMP) $(DEMO)/demo.json
	$(VENV)/bin/peel-gui $(DEMO)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q
	$(VENV)/bin/ruff check .

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean-demo:
	rm -rf $(DEMO)

# One-folder desktop bundle in dist/peel-gui/ (PyInstaller, installed into the venv if missing).
# Slow (~10 min) and big (~5.6 GB with a CUDA torch); see README "Packaging".
package: $(STAMP)
	$(PY) -c "import PyInstaller" 2>/dev/null || $(PY) -m pip install pyinstaller
	$(PY) -m PyInstaller packaging/peel.spec --noconfirm --distpath dist --workpath build
