# Two commands do all the set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Re-install whenever the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cat setup.py | md5sum | cut -c1-12)

.PHONY: setup test demo bench clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

# libusb is what pyrealsense2 loads; install it through apt only when it is missing and apt is usable.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q libusb-1.0-0 || (apt-get update -q && apt-get install -y -q libusb-1.0-0)) >/dev/null \
	      || echo "warning: could not install libusb-1.0-0 (RealSense cameras need it)"; \
	  else echo "note: libusb-1.0-0 missing and apt not usable; RealSense cameras need it"; fi; \
	fi

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

setup: system-deps $(STAMP)

# ROS 2 tests run on the ROS 2 tools/with_ros2 finds (a sourced one, or ../shared/ros2/jazzy); without one they skip.
test: setup
	. $(VENV)/bin/activate && tools/with_ros2 python -m pytest -q -rs test

demo: setup
	$(VENV)/bin/dm1 demo

bench: setup
	$(VENV)/bin/dm1 bench inference

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
