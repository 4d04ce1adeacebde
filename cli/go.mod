module github.com/l5d-go/l5d/cli

go 1.26
