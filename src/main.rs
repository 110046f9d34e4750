//! The `leasehold` binary: a thin shell over `leasehold-node`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("leasehold: the node has not landed yet; see README.md")
}
