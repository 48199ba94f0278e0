// A C++ test program for the symbolizer's correctness test: templates, namespaces,
// lambdas, virtual calls and a lot of inlined standard library code. Every function the
// test checks is in namespace tst (and main).
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace tst {

template <typename T> struct Acc {
    T total{};
    void add(T v) { total += v; }
    T get() const { return total; }
};

template <typename T> __attribute__((noinline)) T sum_sq(const std::vector<T> &v)
{
    Acc<T> acc;
    for (auto x : v)
        acc.add(x * x);
    return acc.get();
}

namespace shapes {
class Shape {
  public:
    virtual ~Shape() = default;
    virtual double area() const = 0;
};

class Rect : public Shape {
  public:
    Rect(double w, double h) : w_(w), h_(h) {}
    double area() const override { return w_ * h_; }

  private:
    double w_, h_;
};

class Circle : public Shape {
  public:
    explicit Circle(double r) : r_(r) {}
    double area() const override { return 3.14159 * r_ * r_; }

  private:
    double r_;
};
} // namespace shapes

__attribute__((noinline)) double total_area(const std::vector<std::unique_ptr<shapes::Shape>> &s)
{
    return std::accumulate(s.begin(), s.end(), 0.0,
                           [](double a, const std::unique_ptr<shapes::Shape> &p) {
                               return a + p->area();
                           });
}

__attribute__((noinline)) std::vector<int> sorted_by_key(std::vector<int> v, int k)
{
    std::sort(v.begin(), v.end(), [k](int a, int b) {
        return (a % k) < (b % k) || ((a % k) == (b % k) && a < b);
    });
    return v;
}

__attribute__((noinline)) std::map<std::string, int> count_words(const std::vector<std::string> &w)
{
    std::map<std::string, int> counts;
    for (const auto &s : w)
        ++counts[s];
    return counts;
}

int run(int argc)
{
    std::vector<int> v(100);
    std::iota(v.begin(), v.end(), argc);
    std::vector<double> d(v.begin(), v.end());
    std::vector<std::unique_ptr<shapes::Shape>> s;
    s.push_back(std::make_unique<shapes::Rect>(2.0, argc));
    s.push_back(std::make_unique<shapes::Circle>(argc));
    auto sorted = sorted_by_key(v, 7);
    auto counts = count_words({"a", "b", "a", std::to_string(argc)});
    auto twice = [argc](int x) { return x * 2 + argc; };
    std::printf("%d %f %f %d %zu %d\n", sum_sq(v), sum_sq(d), total_area(s), sorted[0],
                counts.size(), twice(argc));
    return 0;
}

} // namespace tst

int main(int argc, char **) { return tst::run(argc); }
