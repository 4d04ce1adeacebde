module github.com/l5d-go/l5d/pkg

go 1.26
