fn main() {
    use gorgon_cuda::kernels::*;
    for t in [Target::Ptx("compute_90".into()), Target::cubin_for(9, 0)] {
        for (name, src) in SOURCES {
            let s = std::time::Instant::now();
            compile_source(name, src, &t).unwrap();
            println!("{t:?} {name}: {:?}", s.elapsed());
        }
    }
}
