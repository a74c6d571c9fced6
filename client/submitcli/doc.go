// Package submitcli is the `neurolov submit` command: it uploads a job to
// a coordinator, shows its progress, downloads the verified result and
// prints a one-line summary. It is a thin layer over package client, kept
// apart from cmd/neurolov so that it can be tested without a process.
//
//	neurolov submit -coordinator http://localhost:8080 -key-file ~/.neurolov-key \
//	    -random 1024,1024,1024 -out c.safetensors
//	neurolov submit -kernel mlp-infer -in model-and-batch.safetensors -replication 2
package submitcli
