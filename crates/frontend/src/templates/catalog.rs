//! The templates themselves, as data: each is the body of a ZImagefile
//! (its `stages:`), with its base images as `args:` that version hints
//! fill in. Everything else (the Dockerfile, `runtime:` in a ZImagefile,
//! `kiln templates`) is derived from these.
//!
//! The Windows templates name the platform with the OS build of their
//! `ltsc2022` bases (10.0.20348), so a build picks that image from the
//! base's index without `--platform`.
//!
//! `{{APP}}` in a body is the project's program name (see
//! [`Hints::app`](super::Hints::app)).

use super::{ImageArg, Language, Template};

/// Every template, in the order detection tries them.
pub(super) const TEMPLATES: &[Template] = &[
    Template {
        name: "deno",
        detects: "deno.json or deno.jsonc",
        language: Language::Deno,
        images: &[ImageArg {
            arg: "DENO_IMAGE",
            repo: "denoland/deno",
            default_version: "2.1.4",
            suffix: "",
            versioned: true,
        }],
        ignore: &[".git", ".deno"],
        body: r#"stages:
  build:
    base: ${DENO_IMAGE}
    steps:
      - workdir: /app
      - copy: .
        to: .
      - run: deno install
        env: {DENO_DIR: /app/.deno}
  app:
    base: ${DENO_IMAGE}
    steps:
      - workdir: /app
      - copy: /app
        from: build
        to: /app
        owner: deno:deno
    env: {DENO_DIR: /app/.deno}
    user: deno
    cmd: [deno, task, start]
"#,
    },
    Template {
        name: "bun",
        detects: "package.json with bun.lockb, bun.lock or bunfig.toml",
        language: Language::Bun,
        images: &[
            ImageArg {
                arg: "BUN_IMAGE",
                repo: "oven/bun",
                default_version: "1",
                suffix: "",
                versioned: true,
            },
            ImageArg {
                arg: "RUNTIME_IMAGE",
                repo: "oven/bun",
                default_version: "1",
                suffix: "-slim",
                versioned: true,
            },
        ],
        ignore: &[".git", "node_modules"],
        body: r#"stages:
  build:
    base: ${BUN_IMAGE}
    steps:
      - workdir: /app
      - copy: .
        to: .
      - run: bun install --production
        cache: /root/.bun/install/cache
  app:
    base: ${RUNTIME_IMAGE}
    steps:
      - workdir: /app
      - copy: /app
        from: build
        to: /app
        owner: bun:bun
    env: {NODE_ENV: production}
    user: bun
    cmd: [bun, run, start]
"#,
    },
    Template {
        name: "node",
        detects: "package.json",
        language: Language::Node,
        images: &[ImageArg {
            arg: "NODE_IMAGE",
            repo: "node",
            default_version: "20",
            suffix: "-bookworm-slim",
            versioned: true,
        }],
        ignore: &[".git", "node_modules", "npm-debug.log"],
        body: r#"stages:
  build:
    base: ${NODE_IMAGE}
    steps:
      - workdir: /app
      - copy: ["package*.json"]
        to: ./
      - run: if [ -f package-lock.json ]; then npm ci; else npm install; fi
        cache: /root/.npm
      - copy: .
        to: .
      - run: npm run build --if-present && npm prune --omit=dev
        cache: /root/.npm
  app:
    base: ${NODE_IMAGE}
    steps:
      - workdir: /app
      - copy: /app
        from: build
        to: /app
        owner: node:node
    env: {NODE_ENV: production}
    user: node
    cmd: [npm, start]
"#,
    },
    Template {
        name: "rust",
        detects: "Cargo.toml",
        language: Language::Rust,
        images: &[
            ImageArg {
                arg: "RUST_IMAGE",
                repo: "rust",
                default_version: "1.78",
                suffix: "-slim",
                versioned: true,
            },
            ImageArg {
                arg: "RUNTIME_IMAGE",
                repo: "debian",
                default_version: "bookworm-slim",
                suffix: "",
                versioned: false,
            },
        ],
        ignore: &[".git", "target"],
        body: r#"stages:
  build:
    base: ${RUST_IMAGE}
    steps:
      - workdir: /src
      - copy: .
        to: .
      - run: cargo install --path . --root /out $(test -f Cargo.lock && echo --locked)
        env: {CARGO_TARGET_DIR: /src/target}
        cache: [/usr/local/cargo/registry, /usr/local/cargo/git, /src/target]
  app:
    base: ${RUNTIME_IMAGE}
    steps:
      - run: useradd --system --uid 10001 --no-create-home app
      - copy: /out/bin/
        from: build
        to: /usr/local/bin/
    user: app
    cmd: ["{{APP}}"]
"#,
    },
    Template {
        name: "python",
        detects: "pyproject.toml or requirements.txt",
        language: Language::Python,
        images: &[ImageArg {
            arg: "PYTHON_IMAGE",
            repo: "python",
            default_version: "3.12",
            suffix: "-slim",
            versioned: true,
        }],
        ignore: &[".git", "__pycache__", ".venv", "*.pyc"],
        body: r#"stages:
  build:
    base: ${PYTHON_IMAGE}
    steps:
      - run: python -m venv /venv
      - workdir: /app
      - copy: .
        to: .
      - run: |
          if [ -f requirements.txt ]; then /venv/bin/pip install -r requirements.txt; fi
          if [ -f pyproject.toml ]; then /venv/bin/pip install .; fi
        cache: /root/.cache/pip
  app:
    base: ${PYTHON_IMAGE}
    steps:
      - run: useradd --system --uid 10001 --no-create-home app
      - copy: /venv
        from: build
        to: /venv
      - copy: /app
        from: build
        to: /app
    env: {PATH: "/venv/bin:$PATH", PYTHONUNBUFFERED: "1"}
    workdir: /app
    user: app
    cmd: [python, -m, "{{APP}}"]
"#,
    },
    Template {
        name: "go",
        detects: "go.mod",
        language: Language::Go,
        images: &[
            ImageArg {
                arg: "GO_IMAGE",
                repo: "golang",
                default_version: "1.22",
                suffix: "",
                versioned: true,
            },
            ImageArg {
                arg: "RUNTIME_IMAGE",
                repo: "gcr.io/distroless/static-debian12",
                default_version: "nonroot",
                suffix: "",
                versioned: false,
            },
        ],
        ignore: &[".git"],
        body: r#"stages:
  build:
    base: ${GO_IMAGE}
    steps:
      - workdir: /src
      - copy: [go.mod, "go.sum*"]
        to: ./
      - run: go mod download
        cache: /go/pkg/mod
      - copy: .
        to: .
      - run: go build -trimpath -ldflags=-s -o /out/app .
        env: {CGO_ENABLED: "0"}
        cache: [/go/pkg/mod, /root/.cache/go-build]
  app:
    base: ${RUNTIME_IMAGE}
    steps:
      - copy: /out/app
        from: build
        to: /app
    user: "65532:65532"
    entrypoint: [/app]
"#,
    },
    Template {
        name: "dotnet",
        detects: "a *.csproj or *.sln (Windows Server Core)",
        language: Language::Dotnet,
        images: &[
            ImageArg {
                arg: "SDK_IMAGE",
                repo: "mcr.microsoft.com/dotnet/sdk",
                default_version: "8.0",
                suffix: "-windowsservercore-ltsc2022",
                versioned: true,
            },
            ImageArg {
                arg: "RUNTIME_IMAGE",
                repo: "mcr.microsoft.com/dotnet/aspnet",
                default_version: "8.0",
                suffix: "-windowsservercore-ltsc2022",
                versioned: true,
            },
        ],
        ignore: &[".git", "bin", "obj"],
        body: r#"stages:
  build:
    base: ${SDK_IMAGE}
    platform: windows/amd64:10.0.20348
    steps:
      - workdir: C:/src
      - copy: .
        to: .
      - run: dotnet publish -c Release -o C:/app
        cache: C:/Users/ContainerAdministrator/.nuget/packages
  app:
    base: ${RUNTIME_IMAGE}
    platform: windows/amd64:10.0.20348
    steps:
      - copy: C:/app
        from: build
        to: C:/app
    workdir: C:/app
    user: ContainerUser
    entrypoint: [dotnet, "{{APP}}.dll"]
"#,
    },
    Template {
        name: "nanoserver",
        detects: "a *.exe at the project's root (a prebuilt Windows program)",
        language: Language::Exe,
        images: &[ImageArg {
            arg: "NANOSERVER_IMAGE",
            repo: "mcr.microsoft.com/windows/nanoserver",
            default_version: "ltsc2022",
            suffix: "",
            versioned: false,
        }],
        ignore: &[".git"],
        body: r#"stages:
  app:
    base: ${NANOSERVER_IMAGE}
    platform: windows/amd64:10.0.20348
    steps:
      - workdir: C:/app
      - copy: "{{APP}}.exe"
        to: C:/app/
    user: ContainerUser
    entrypoint: ["C:/app/{{APP}}.exe"]
"#,
    },
];
