"""Image builders: the enrollment netboot image (kernel + busybox initramfs) from Debian packages.

Recipes live in the repo's `image/` directory; `enroll.build()` turns `image/enroll/`
into `vmlinuz`, `initrd.img` and `build.json`, cached by the recipe's hash.
"""
