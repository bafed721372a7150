# The two set-up-and-go commands (see README):
#   make lab   – set everything up and open JupyterLab on the tour notebook
#   make test  – set everything up and run every test (JS unit, Python, notebooks, browser)
.PHONY: lab test setup js-test py-test bench screenshot lint

lab:
	scripts/setup.sh
	scripts/lab.sh

test:
	WITH_BROWSER=1 scripts/setup.sh
	$(MAKE) lint js-test
	$(MAKE) py-test

setup:
	scripts/setup.sh

lint:
	.venv/bin/python -m ruff check superwidgets superwidgets_server tests bench scripts
	npx --no-install tsc --noEmit

js-test:
	npm test --silent

# pytest last: its summary line closes the output
py-test:
	.venv/bin/python -m pytest -p no:cacheprovider

bench:
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	.venv/bin/python -m bench all

screenshot:
	SW_SCREENSHOT=docs/featurelab.png SW_SCREENSHOT_TEXT=docs/text.png .venv/bin/python -m pytest tests/browser -k "screenshot or text_feature"
