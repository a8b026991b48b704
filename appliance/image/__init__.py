"""Image builders: the enrollment netboot image and the flashable node image, from Debian packages.

Recipes live in the repo's `image/` directory (carried by the wheel as `recipes/`).
`enroll.build()` turns `image/enroll/` into `vmlinuz`, `initrd.img` and `build.json`,
cached by the recipe's hash; `node.build()` turns `image/node/` and this checkout into
the node image (raw, qcow2, Vagrant box). `firstboot`, `prepare` and `seed` run inside
the node image.
"""
