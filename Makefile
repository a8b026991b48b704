# The two commands (see README): `make run` and `make test`. Both install what they need
# first: Debian packages (as root, only those missing) and a virtualenv in .venv.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

# Debian packages, by what needs them.
DEB_BASE := python3 python3-venv python3-dev gcc make iproute2 iputils-ping procps curl ca-certificates
# The node image (`make image`, `appliance image build node`) and what its tests use.
DEB_IMAGE := mmdebstrap grub-common grub-pc-bin grub-efi-amd64-bin dosfstools mtools e2fsprogs fdisk \
	qemu-utils zstd tar util-linux apt dpkg
DEB_RUN := $(DEB_BASE) qemu-system-x86 qemu-utils ipxe-qemu ovmf ipxe pxelinux syslinux-common tcpdump \
	$(DEB_IMAGE)
DEB_TEST_IMAGE := $(DEB_IMAGE) qemu-system-x86 ovmf dnsmasq-base openssh-client vagrant vagrant-libvirt
# One line per service, so that each service's work edits only its own line.
DEB_TEST_DHCP := busybox isc-dhcp-client kea-admin qemu-system-x86 ipxe-qemu
DEB_TEST_DNS := bind9-dnsutils knot-dnsutils dnsmasq-base
DEB_TEST_TFTP := tftp-hpa atftp curl busybox ipxe pxelinux syslinux-common
DEB_TEST_SMB := smbclient
DEB_TEST_BOOT := qemu-system-x86 qemu-utils ipxe-qemu ovmf ipxe busybox dnsmasq-base dpkg apt tcpdump
DEB_TEST_FABRIC := ejabberd erlang-base prosody libvirt-clients qemu-system-x86 util-linux
DEB_TEST := $(DEB_BASE) postgresql etcd-server ejabberd erlang-base nginx-light \
	$(DEB_TEST_DHCP) $(DEB_TEST_DNS) $(DEB_TEST_TFTP) $(DEB_TEST_SMB) $(DEB_TEST_BOOT) $(DEB_TEST_IMAGE) \
	$(DEB_TEST_FABRIC)
DEB_BENCH_DHCP := dnsmasq-base kea-admin
DEB_BENCH_DNS := dnsperf bind9-dnsutils dnsmasq-base
DEB_BENCH_TFTP := atftp libwrap0 libpcre2-8-0
DEB_BENCH_SMB := smbclient samba-libs
DEB_BENCH := $(DEB_TEST) $(DEB_BENCH_DHCP) $(DEB_BENCH_DNS) $(DEB_BENCH_TFTP) $(DEB_BENCH_SMB)

.PHONY: run test bench image deps-run deps-test deps-bench deps-image venv lint clean

# The lab: the appliance and QEMU machines in network namespaces; they PXE-boot and
# enroll, the inventory is printed, and everything is stopped again.
run: deps-run venv
	$(PY) -m appliance lab down
	$(PY) -m appliance lab up --vms 2
	$(PY) -m appliance lab down

test: deps-test venv
	$(PY) -m pytest $(PYTEST_ARGS)

# `make bench BENCH="dhcp dns"` runs some; each prints ratios against its peer.
bench: deps-bench venv
	$(PY) -m bench $(BENCH)

lint: venv
	$(PY) -m ruff check appliance netservices agent tests bench

# The flashable node image (raw for dd, qcow2, Vagrant box) into build/node; see README.
image: deps-image venv
	$(PY) -m appliance image build node --output build/node $(IMAGE_ARGS)

deps-image:
	tools/apt-ensure $(DEB_IMAGE)

deps-run:
	tools/apt-ensure $(DEB_RUN)

deps-test:
	tools/apt-ensure $(DEB_TEST)

deps-bench:
	tools/apt-ensure $(DEB_BENCH)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
