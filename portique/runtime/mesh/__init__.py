"""The venue mesh: gates of one venue share their admissions through an MQTT broker.

``config``  the ``[mesh]`` section; ``wire``  the signed message format (docs/mesh.md);
``store``  the mesh's tables in the journal (own records to publish, merged peer records,
conflicts); ``node``  the broker client and anti-entropy. `gate mesh status` is in
portique.commands.mesh, the two-gate demo in portique.devtools.mesh_demo.
"""
