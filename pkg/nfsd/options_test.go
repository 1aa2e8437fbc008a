package nfsd

import "github.com/rwxnfs/rwxnfs/pkg/exports"

type exportsOptions = exports.Options

func defaultOptions() exports.Options { return exports.DefaultOptions() }
